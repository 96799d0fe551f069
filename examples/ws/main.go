// Command ws is a websocket chat served by handoff. When a drain starts
// (a restart handed the listener to a new process, or SIGTERM), every
// client receives close code 1001 "going away"; the page reconnects by
// itself, to the new process, and the conversation goes on.
//
//	go run ./examples/ws              # then open http://127.0.0.1:8090/
//	kill -HUP $(cat /tmp/ws-demo.pid) # watch the page reconnect
package main

import (
	_ "embed"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/handoff-go/handoff/hijack"
	"github.com/handoff-go/handoff/listeners"
	"github.com/handoff-go/handoff/server"
)

//go:embed index.html
var page []byte

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address")
	pidFile := flag.String("pidfile", os.TempDir()+"/ws-demo.pid", "PID file")
	flag.Parse()
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}).With().Timestamp().Logger()

	srv := server.New(server.WithLogger(log), server.WithPIDFile(*pidFile), server.WithHammerTime(10*time.Second))
	h := newHub()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	mux.HandleFunc("/ws", h.serve)
	srv.Listen("chat", *addr, listeners.HTTP(mux))
	if err := srv.Serve(); err != nil {
		log.Error().Err(err).Msg("serve")
		os.Exit(1)
	}
}

// hub relays every message to every client.
type hub struct {
	up      websocket.Upgrader
	mu      sync.Mutex
	clients map[*client]struct{}
}

type client struct {
	conn *websocket.Conn
	send chan []byte
}

func newHub() *hub { return &hub{clients: map[*client]struct{}{}} }

func (h *hub) broadcast(msg []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		select {
		case c.send <- msg:
		default: // a client that cannot keep up misses messages
		}
	}
}

func (h *hub) serve(w http.ResponseWriter, r *http.Request) {
	conn, err := h.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &client{conn: conn, send: make(chan []byte, 32)}
	h.mu.Lock()
	h.clients[c] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.clients, c)
		h.mu.Unlock()
		conn.Close()
	}()

	// The writer owns every write; it says goodbye when the drain starts.
	done := make(chan struct{})
	defer close(done)
	go func() {
		hello := fmt.Sprintf("server: you are talking to pid %d", os.Getpid())
		conn.WriteMessage(websocket.TextMessage, []byte(hello))
		for {
			select {
			case msg := <-c.send:
				conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if conn.WriteMessage(websocket.TextMessage, msg) != nil {
					return
				}
			case <-hijack.Notify(r.Context()):
				bye := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server restarting")
				conn.WriteControl(websocket.CloseMessage, bye, time.Now().Add(time.Second))
				return // the reader sees the client's close and ends the handler
			case <-done:
				return
			}
		}
	}()
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			return
		}
		h.broadcast(msg)
	}
}
