//go:build linux

package handoff_test

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsClient is one websocket client of the test server.
type wsClient struct {
	conn *websocket.Conn
	pid  int
}

func dialWS(addr string) (*wsClient, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, _, err := d.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		return nil, err
	}
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	_, msg, err := conn.ReadMessage()
	if err != nil {
		conn.Close()
		return nil, err
	}
	var pid int
	if _, err := fmt.Sscanf(string(msg), "pid %d", &pid); err != nil {
		conn.Close()
		return nil, fmt.Errorf("greeting %q", msg)
	}
	return &wsClient{conn: conn, pid: pid}, nil
}

// awaitClose reads until the server closes and returns the close code;
// gorilla's default close handler answers the server's close frame.
func (c *wsClient) awaitClose() int {
	for {
		_, _, err := c.conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		return websocket.CloseAbnormalClosure // 1006: the connection just died
	}
}

func dialAll(t *testing.T, addr string, n int) []*wsClient {
	t.Helper()
	clients := make([]*wsClient, n)
	for i := range clients {
		c, err := dialWS(addr)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		clients[i] = c
		t.Cleanup(func() { c.conn.Close() })
	}
	return clients
}

// On SIGHUP each of 100 websocket clients gets close 1001, none an
// abnormal 1006, and each reconnects to the new process.
func TestWebsocketsAcrossRestart(t *testing.T) {
	s := startServer(t)
	old := s.current()
	clients := dialAll(t, s.api, 100)
	// Each client echoes once, so the connection is known to be live.
	for i, c := range clients {
		msg := []byte("hello " + strconv.Itoa(i))
		if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
			t.Fatal(err)
		}
		if _, got, err := c.conn.ReadMessage(); err != nil || string(got) != string(msg) {
			t.Fatalf("echo %q, %v", got, err)
		}
	}
	if h := s.stats()["Hijacked"].(float64); h != 100 {
		t.Fatalf("server counts %v hijacked connections, want 100", h)
	}
	codes := make(chan int, len(clients))
	reconnected := make(chan int, len(clients))
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- c.awaitClose()
			c.conn.Close()
			n, err := dialWS(s.api)
			if err != nil {
				reconnected <- -1
				return
			}
			n.conn.Close()
			reconnected <- n.pid
		}()
	}
	s.signal(old, syscall.SIGHUP)
	wg.Wait()
	close(codes)
	close(reconnected)
	byCode := map[int]int{}
	for code := range codes {
		byCode[code]++
	}
	if byCode[websocket.CloseGoingAway] != len(clients) {
		t.Fatalf("close codes %v, want %d × 1001", byCode, len(clients))
	}
	if code := s.waitExit(old, 30*time.Second); code != 0 {
		t.Fatalf("old process exited %d", code)
	}
	now := s.current()
	for pid := range reconnected {
		if pid != now {
			t.Fatalf("a client reconnected to pid %d, want the new process %d", pid, now)
		}
	}
}

// On SIGTERM every client gets 1001, and the process exits once they have
// closed; a client that ignores the close frame is cut at hammer time and
// the process still exits.
func TestWebsocketsOnSIGTERM(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		t.Run(fmt.Sprintf("ignoring client %v", ignore), func(t *testing.T) {
			const hammer = 2 * time.Second
			s := startServer(t, "-hammer", hammer.String())
			pid := s.current()
			clients := dialAll(t, s.api, 20)
			if ignore {
				// This client never answers the close frame nor closes.
				clients[0].conn.SetCloseHandler(func(int, string) error { return nil })
			}
			codes := make(chan int, len(clients))
			for _, c := range clients {
				go func() { codes <- c.awaitClose() }()
			}
			start := time.Now()
			s.signal(pid, syscall.SIGTERM)
			for range clients {
				if code := <-codes; code != websocket.CloseGoingAway {
					t.Fatalf("close code %d, want 1001", code)
				}
			}
			for _, c := range clients[1:] {
				c.conn.Close()
			}
			if code := s.waitExit(pid, 30*time.Second); code != 0 {
				t.Fatalf("exit status %d", code)
			}
			took := time.Since(start)
			if ignore {
				if took < hammer {
					t.Fatalf("exited after %v, before hammer time with a client still open", took)
				}
				clients[0].conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := clients[0].conn.UnderlyingConn().Read(make([]byte, 1)); err == nil {
					t.Fatal("the ignoring client's connection is still open")
				}
				if n := s.logCount(pid, "hammered open connections"); n != 1 {
					t.Fatalf("hammer logged %d times", n)
				}
			} else if took >= hammer {
				t.Fatalf("exit took %v: waited for hammer time although every client closed", took)
			}
		})
	}
}
