//go:build unix

package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/listeners"
)

// keepAlive is a raw HTTP/1.1 client on one connection, with no retries.
type keepAlive struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr net.Addr) *keepAlive {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &keepAlive{t: t, c: c, br: bufio.NewReader(c)}
}

func (k *keepAlive) do(path string) (*http.Response, string, error) {
	if _, err := io.WriteString(k.c, "GET "+path+" HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		return nil, "", err
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return nil, "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body), err
}

func serveWith(t *testing.T, h http.Handler, opts ...Option) (*Server, chan error) {
	t.Helper()
	opts = append([]Option{WithHandler(h)}, opts...)
	return startServer(t, newFakeOS(t), opts...)
}

func waitDrained(t *testing.T, s *Server) {
	t.Helper()
	select {
	case <-s.drained:
	case <-time.After(20 * time.Second):
		t.Fatal("drain did not end")
	}
}

func TestDrainAsksKeepAliveClientsToClose(t *testing.T) {
	s, _ := serveWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		WithIdleGrace(time.Minute))
	k := dialKeepAlive(t, s.Addr("api"))
	resp, _, err := k.do("/")
	if err != nil || resp.Close {
		t.Fatalf("before the drain: err %v, close %v; want a kept-alive answer", err, resp != nil && resp.Close)
	}
	s.beginDrain("test")
	resp, body, err := k.do("/")
	if err != nil {
		t.Fatalf("request on a kept-alive connection during the drain failed: %v", err)
	}
	if !resp.Close || body != "ok" {
		t.Fatalf("during the drain: close %v, body %q; want Connection: close and ok", resp.Close, body)
	}
	if _, err := k.br.ReadByte(); err != io.EOF {
		t.Fatalf("after the last response: %v, want EOF", err)
	}
	waitDrained(t, s)
}

func TestDrainClosesIdleConnectionsAfterGrace(t *testing.T) {
	const grace = 200 * time.Millisecond
	s, _ := serveWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), WithIdleGrace(grace))
	k := dialKeepAlive(t, s.Addr("api"))
	if _, _, err := k.do("/"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s.beginDrain("test")
	// The server half-closes: the client reads a clean end of stream,
	// not a reset, and only after the grace period.
	if _, err := k.br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want EOF", err)
	}
	if waited := time.Since(start); waited < grace {
		t.Fatalf("closed after %v, before the %v grace", waited, grace)
	}
	k.c.Close()
	waitDrained(t, s)
}

func TestDrainLetsInFlightRequestsFinish(t *testing.T) {
	entered := make(chan struct{})
	s, served := serveWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, "done")
	}))
	k := dialKeepAlive(t, s.Addr("api"))
	got := make(chan string, 1)
	go func() {
		_, body, err := k.do("/")
		if err != nil {
			body = err.Error()
		}
		got <- body
	}()
	<-entered
	s.beginDrain("test")
	if body := <-got; body != "done" {
		t.Fatalf("in-flight request got %q, want done", body)
	}
	if err := waitServed(t, served); err != nil {
		t.Fatal(err)
	}
	if h := s.Stats().Hammered; h != 0 {
		t.Fatalf("%d connections hammered", h)
	}
}

// A drain that waits for a long request sleeps until the request ends,
// instead of waking every so often to look: in an idle process each
// wake-up costs CPU. It still ends as soon as the request does.
func TestDrainSleepsUntilARequestEnds(t *testing.T) {
	var sweeps atomic.Int32
	testHookSweep = func() { sweeps.Add(1) }
	t.Cleanup(func() { testHookSweep = nil }) // after the server's own cleanups
	entered, release := make(chan struct{}), make(chan struct{})
	s, served := serveWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	}))
	// A client that closes after its request: once it is answered, its
	// connection closes and nothing is left to wait for.
	k := dialKeepAlive(t, s.Addr("api"))
	got := make(chan string, 1)
	go func() {
		body := "no response"
		if _, err := io.WriteString(k.c, "GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"); err != nil {
			body = err.Error()
		} else if resp, err := http.ReadResponse(k.br, nil); err != nil {
			body = err.Error()
		} else {
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
		}
		got <- body
	}()
	<-entered
	s.beginDrain("test")
	// Nothing ends for a while: the drain sweeps once when it begins, and
	// not again (a sweep every 250 ms would make 5 or more).
	time.Sleep(1200 * time.Millisecond)
	if n := sweeps.Load(); n > 2 {
		t.Errorf("%d sweeps while nothing ended, want at most 2", n)
	}
	released := time.Now()
	close(release)
	if body := <-got; body != "done" {
		t.Fatalf("in-flight request got %q, want done", body)
	}
	if err := waitServed(t, served); err != nil {
		t.Fatal(err)
	}
	// net/http keeps the connection open for 500 ms after the response
	// (to avoid a reset); the drain ends once it closes, woken by the
	// close, not by a look of its own 5 s later.
	if took := time.Since(released); took > 3*time.Second {
		t.Errorf("the drain ended %v after the request did, want it woken at once", took)
	}
}

func TestHammerClosesEverything(t *testing.T) {
	entered := make(chan struct{}, 1)
	cause := make(chan error, 1)
	stuck := make(chan struct{})
	defer close(stuck)
	s, served := serveWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/block" {
			return
		}
		entered <- struct{}{}
		<-r.Context().Done()
		cause <- context.Cause(r.Context())
		<-stuck // a handler that does not return when told
	}))
	// Outside a drain, Hammer is refused and nothing is closed.
	if err := s.Hammer(); !errors.Is(err, ErrNotDraining) {
		t.Fatalf("Hammer while serving = %v, want ErrNotDraining", err)
	}
	if st := get(t, s); st != "200 OK" {
		t.Fatalf("after a refused hammer: %s", st)
	}

	k := dialKeepAlive(t, s.Addr("api"))
	failed := make(chan error, 1)
	go func() { _, _, err := k.do("/block"); failed <- err }()
	<-entered
	s.beginDrain("test")
	if err := s.Hammer(); err != nil {
		t.Fatalf("Hammer during the drain: %v", err)
	}
	if err := <-failed; err == nil {
		t.Fatal("the hammered request got an answer")
	}
	if err := <-cause; !errors.Is(err, ErrHammered) {
		t.Fatalf("handler context cause = %v, want hammer time", err)
	}
	if err := waitServed(t, served); err != nil {
		t.Fatal(err)
	}
	if h := s.Stats().Hammered; h < 1 {
		t.Fatalf("Stats().Hammered = %d, want at least 1", h)
	}
}

func TestHammerTimeBoundsTheDrain(t *testing.T) {
	entered := make(chan struct{})
	s, served := serveWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
	}), WithHammerTime(300*time.Millisecond))
	k := dialKeepAlive(t, s.Addr("api"))
	go k.do("/")
	<-entered
	start := time.Now()
	s.beginDrain("test")
	if err := waitServed(t, served); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("drain ended after %v, before hammer time", took)
	}
	if h := s.Stats().Hammered; h != 1 {
		t.Fatalf("Stats().Hammered = %d, want 1", h)
	}
}

func TestTCPHandlersSeeTheDrain(t *testing.T) {
	f := newFakeOS(t)
	handling := make(chan struct{})
	finished := make(chan error, 1)
	s := newServer(f.osx(), WithSignals(silentSource{}), WithLogger(testLogger(t)))
	s.Listen("echo", "127.0.0.1:0", listeners.TCP(func(ctx context.Context, c net.Conn) {
		close(handling)
		<-ctx.Done()
		time.Sleep(100 * time.Millisecond) // finishing up after the news
		finished <- context.Cause(ctx)
	}))
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	<-s.Serving()
	c, err := net.Dial("tcp", s.Addr("echo").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-handling
	s.beginDrain("test")
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) before the TCP handler finished", err)
	case err := <-finished:
		if !errors.Is(err, ErrDraining) {
			t.Fatalf("handler context cause = %v, want the drain", err)
		}
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if h := s.Stats().Hammered; h != 0 {
		t.Fatalf("%d hammered", h)
	}
}

func TestServeRejectsBadConfiguration(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name  string
		build func(s *Server)
		opts  []Option
		want  string
	}{
		{"no listener", func(s *Server) {}, nil, "no listener"},
		{"duplicate names", func(s *Server) { s.Listen("api", ":0").Listen("api", ":0") }, nil, `"api" declared twice`},
		{"empty name", func(s *Server) { s.Listen("", ":0") }, nil, "empty name"},
		{"bad name", func(s *Server) { s.Listen("a,b", ":0") }, nil, "invalid name"},
		{"no port", func(s *Server) { s.Listen("api", "127.0.0.1") }, nil, "bad address"},
		{"port out of range", func(s *Server) { s.Listen("api", ":70000") }, nil, "out of range"},
		{"bad host", func(s *Server) { s.Listen("api", "exa mple:80") }, nil, "invalid host"},
		{"port in use", func(s *Server) { s.Listen("api", busy.Addr().String()) }, nil, "address already in use"},
		{"two kinds", func(s *Server) {
			s.Listen("api", ":0", listeners.HTTP(nil), listeners.TCP(func(context.Context, net.Conn) {}))
		}, nil, "both http and tcp"},
		{"nil tcp handler", func(s *Server) { s.Listen("api", ":0", listeners.TCP(nil)) }, nil, "TCP handler is nil"},
		{"missing certificate", func(s *Server) {
			s.Listen("api", "127.0.0.1:0", listeners.TLSFiles("/nonexistent/cert.pem", "/nonexistent/key.pem"))
		}, nil, "/nonexistent/cert.pem"},
		{"unknown scheme", func(s *Server) { s.Listen("api", "quic:127.0.0.1:443") }, nil, "unknown address scheme"},
		{"unix path too long", func(s *Server) { s.Listen("api", "unix:/"+strings.Repeat("x", 120)) }, nil, "more than the 107"},
		{"unix socket in a missing directory", func(s *Server) { s.Listen("api", "unix:/nonexistent/dir/app.sock") }, nil, "no such file or directory"},
		{"Packet on a TCP address", func(s *Server) {
			s.Listen("dns", "127.0.0.1:0", listeners.Packet(func(context.Context, net.PacketConn) {}))
		}, nil, "needs a udp: address"},
		{"UDP without Packet", func(s *Server) { s.Listen("dns", "udp:127.0.0.1:0") }, nil, "needs listeners.Packet"},
		{"FileMode on TCP", func(s *Server) { s.Listen("api", "127.0.0.1:0", listeners.FileMode(0o600)) }, nil, "for unix socket paths"},
		{"Serve without shutdown", func(s *Server) {
			s.Listen("own", "127.0.0.1:0", listeners.Serve(func(net.Listener) error { return nil }, nil))
		}, nil, "needs a serve and a shutdown"},
		{"Serve failing at once", func(s *Server) {
			s.Listen("own", "127.0.0.1:0", listeners.Serve(func(net.Listener) error { return errors.New("no way") },
				func(context.Context) error { return nil }))
		}, nil, "no way"},
		{"TLS config without a certificate", func(s *Server) {
			s.Listen("api", "127.0.0.1:0", listeners.TLS(&tls.Config{}))
		}, nil, "TLS config has no certificate"},
		{"certificate is a FIFO", func(s *Server) {
			fifo := filepath.Join(t.TempDir(), "cert.pem")
			unix.Mkfifo(fifo, 0o600)
			s.Listen("api", "127.0.0.1:0", listeners.TLSFiles(fifo, fifo))
		}, nil, "not a regular file"},
		{"bad option", func(s *Server) { s.Listen("api", ":0") }, []Option{WithHammerTime(-time.Second)}, "hammer time must be positive"},
		{"PID file in a missing directory", func(s *Server) { s.Listen("api", "127.0.0.1:0") },
			[]Option{WithPIDFile("/nonexistent/dir/app.pid")}, "PID file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]Option{WithSignals(silentSource{}), WithLogger(testLogger(t))}, tt.opts...)
			s := newServer(newFakeOS(t).osx(), opts...)
			tt.build(s)
			done := make(chan error, 1)
			go func() { done <- s.Serve() }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Serve = %v, want an error with %q", err, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Serve did not fail")
			}
			if err := s.Serve(); !errors.Is(err, ErrClosed) {
				t.Fatalf("second Serve = %v, want ErrClosed", err)
			}
		})
	}
}

// Listen racing Serve's start is safe: the listener is either declared in
// time or refused with an error, never read half-written.
func TestListenRacingServe(t *testing.T) {
	for range 20 {
		s := newServer(newFakeOS(t).osx(), WithSignals(silentSource{}), WithLogger(testLogger(t)))
		s.Listen("api", "127.0.0.1:0")
		done := make(chan error, 1)
		go func() { done <- s.Serve() }()
		for i := range 5 {
			s.Listen(fmt.Sprintf("late%d", i), "127.0.0.1:0")
		}
		s.Shutdown(context.Background())
		<-done
	}
}

func TestShutdownBeforeServe(t *testing.T) {
	s := newServer(newFakeOS(t).osx(), WithSignals(silentSource{}), WithLogger(testLogger(t)))
	s.Listen("api", "127.0.0.1:0")
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Serve after Shutdown = %v, want ErrClosed", err)
	}
}

// chanSource delivers the signals a test sends on it.
type chanSource struct {
	mu  sync.Mutex
	out chan<- os.Signal
	sub chan struct{}
}

func newChanSource() *chanSource { return &chanSource{sub: make(chan struct{}, 8)} }

func (c *chanSource) Notify(ch chan<- os.Signal, _ ...os.Signal) {
	c.mu.Lock()
	c.out = ch
	c.mu.Unlock()
	c.sub <- struct{}{}
}

func (c *chanSource) Stop(chan<- os.Signal) {}

func (c *chanSource) send(sig os.Signal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out <- sig
}

func TestSignalHooksRunAroundActions(t *testing.T) {
	src := newChanSource()
	f := newFakeOS(t)
	s := newServer(f.osx(), WithSignals(src), WithLogger(testLogger(t)),
		WithHandler(http.NotFoundHandler()))
	s.Listen("api", "127.0.0.1:0")
	var mu sync.Mutex
	var events []string
	record := func(e string) func() {
		return func() { mu.Lock(); events = append(events, e); mu.Unlock() }
	}
	hooked := make(chan struct{}, 8)
	s.Before(syscall.SIGUSR2, record("before usr2 1"))
	s.Before(syscall.SIGUSR2, record("before usr2 2"))
	s.After(syscall.SIGUSR2, record("after usr2"))
	s.After(syscall.SIGUSR2, func() { hooked <- struct{}{} })
	s.Before(syscall.SIGTERM, record("before term"))
	s.After(syscall.SIGTERM, record("after term"))
	s.After(syscall.SIGTERM, func() { hooked <- struct{}{} })
	// A program's own action replaces the default restart.
	s.Handle(syscall.SIGHUP, func() { record("my hup")(); hooked <- struct{}{} })

	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	<-s.Serving()
	<-src.sub

	src.send(syscall.SIGUSR2) // not draining: ignored
	<-hooked
	if s.Stats().Draining {
		t.Fatal("SIGUSR2 started a drain")
	}
	src.send(syscall.SIGHUP)
	<-hooked
	if n := len(f.children); n != 0 {
		t.Fatalf("the replaced SIGHUP action started %d children", n)
	}
	src.send(syscall.SIGTERM)
	<-hooked
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"before usr2 1", "before usr2 2", "after usr2", "my hup", "before term", "after term"}
	if !slices.Equal(events, want) {
		t.Fatalf("events %v, want %v", events, want)
	}
}

// SIGUSR2 during a drain hammers it.
func TestSIGUSR2DuringDrain(t *testing.T) {
	src := newChanSource()
	entered := make(chan struct{})
	s := newServer(newFakeOS(t).osx(), WithSignals(src), WithLogger(testLogger(t)),
		WithHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-r.Context().Done()
		})))
	s.Listen("api", "127.0.0.1:0")
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	<-s.Serving()
	<-src.sub
	k := dialKeepAlive(t, s.Addr("api"))
	go k.do("/")
	<-entered
	src.send(syscall.SIGTERM)
	<-s.quit // the drain has started
	src.send(syscall.SIGUSR2)
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("SIGUSR2 did not end the drain")
	}
	if h := s.Stats().Hammered; h != 1 {
		t.Fatalf("hammered %d, want 1", h)
	}
}

// The handler of a hijacked connection (a websocket) still blocked at
// hammer time sees its context cancelled, with hammer time as the cause.
func TestHammerCancelsHijackedHandlers(t *testing.T) {
	hijacked := make(chan struct{})
	cause := make(chan error, 1)
	s, served := serveWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		close(hijacked)
		<-r.Context().Done() // a handler that ignores the drain
		cause <- context.Cause(r.Context())
	}))
	k := dialKeepAlive(t, s.Addr("api"))
	go k.do("/")
	<-hijacked
	s.beginDrain("test")
	if err := s.Hammer(); err != nil {
		t.Fatal(err)
	}
	if err := <-cause; !errors.Is(err, ErrHammered) {
		t.Fatalf("hijacked handler's context cause = %v, want hammer time", err)
	}
	if err := waitServed(t, served); err != nil {
		t.Fatal(err)
	}
}
