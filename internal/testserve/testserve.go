// Package testserve holds the handlers that the test server
// (internal/testbin) and the soak server (bench/soak/server) both serve.
package testserve

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"github.com/handoff-go/handoff/hijack"
)

var upgrader websocket.Upgrader

// WebSocketEcho greets with "pid N", echoes every message, and closes with
// 1001 (going away) when the server drains.
func WebSocketEcho(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	echo := make(chan []byte, 8)
	done := make(chan struct{})
	defer close(done)
	go func() { // the only writer
		c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf("pid %d", os.Getpid())))
		for {
			select {
			case m := <-echo:
				if c.WriteMessage(websocket.TextMessage, m) != nil {
					return
				}
			case <-hijack.Notify(r.Context()):
				msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server restarting")
				c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
				return
			case <-done:
				return
			}
		}
	}()
	for {
		_, p, err := c.ReadMessage()
		if err != nil {
			return
		}
		select {
		case echo <- p:
		case <-done:
			return
		}
	}
}

// EchoLines echoes line by line. When the drain starts it finishes the
// line in hand, and gives a client that is quiet one more second to send
// one, then closes.
func EchoLines(ctx context.Context, c net.Conn) {
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now().Add(time.Second)) })
	defer stop()
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if _, werr := c.Write(line); werr != nil {
				return
			}
		}
		if err != nil || ctx.Err() != nil {
			return
		}
	}
}

// UDPEcho answers each datagram with "PID datagram" until the new process
// reads the socket.
func UDPEcho(ctx context.Context, pc net.PacketConn) {
	buf := make([]byte, 2048)
	prefix := []byte(strconv.Itoa(os.Getpid()) + " ")
	for {
		n, addr, err := pc.ReadFrom(buf)
		if n > 0 {
			pc.WriteTo(append(prefix, buf[:n]...), addr)
		}
		if err != nil {
			if ctx.Err() != nil {
				return // the new process reads the socket now
			}
			continue
		}
	}
}

// Misbehave does what mode asks of a restart's new process before it
// serves: "crash" exits with status 3, "hang" never returns, "slow" waits
// two seconds. It reports whether it knew the mode.
func Misbehave(who, mode string) bool {
	switch mode {
	case "crash":
		fmt.Fprintln(os.Stderr, who+": crashing on purpose")
		os.Exit(3)
	case "hang":
		fmt.Fprintln(os.Stderr, who+": hanging on purpose")
		select {}
	case "slow":
		time.Sleep(2 * time.Second)
		return true
	}
	return false
}
