//go:build unix

package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/handoff-go/handoff/listeners"
)

// Everything a server starts ends with it: after keep-alive HTTP, HTTP/2
// over TLS, a TCP handler, a hijacked connection, a failed restart and a
// handoff, the goroutine count comes back to where it was.
func TestNoGoroutineLeft(t *testing.T) {
	before := goleak.IgnoreCurrent() // goroutines of earlier tests are theirs

	_, cert, key := certFiles(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/hijack", func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("hijacked\n")
		brw.Flush()
		io.Copy(io.Discard, c) // until the client or the hammer closes it
	})
	f := newFakeOS(t)
	s := newServer(f.osx(), WithSignals(silentSource{}), WithLogger(testLogger(t)),
		WithReadyTimeout(200*time.Millisecond), WithHammerTime(time.Second), WithHandler(mux))
	s.Listen("api", "127.0.0.1:0").
		Listen("secure", "127.0.0.1:0", listeners.TLSFiles(cert, key)).
		Listen("echo", "127.0.0.1:0", listeners.TCP(func(ctx context.Context, c net.Conn) {
			go func() { <-ctx.Done(); c.SetReadDeadline(time.Now()) }()
			io.Copy(c, c)
		}))
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	<-s.Serving()

	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for _, u := range []string{"http://" + s.Addr("api").String() + "/", "https://" + s.Addr("secure").String() + "/"} {
		for range 3 {
			resp, err := client.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	echo, err := net.Dial("tcp", s.Addr("echo").String())
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	io.WriteString(echo, "x")
	echo.Read(make([]byte, 1))
	hj, err := net.Dial("tcp", s.Addr("api").String())
	if err != nil {
		t.Fatal(err)
	}
	defer hj.Close()
	io.WriteString(hj, "GET /hijack HTTP/1.1\r\nHost: x\r\n\r\n")
	if line, _ := bufio.NewReader(hj).ReadString('\n'); line != "hijacked\n" {
		t.Fatalf("hijack said %q", line)
	}

	f.setNext(childHang)
	if err := s.Restart(); err == nil {
		t.Fatal("a hanging child was accepted")
	}
	f.setNext(childReady)
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil { // the hijacked one is hammered
		t.Fatal(err)
	}
	tr.CloseIdleConnections()
	hj.Close()
	echo.Close()

	goleak.VerifyNone(t, before)
}
