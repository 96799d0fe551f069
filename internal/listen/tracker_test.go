package listen

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCheckAddr(t *testing.T) {
	for addr, ok := range map[string]bool{
		":8080": true, "127.0.0.1:0": true, "[::1]:443": true, "localhost:http": true, "example.com:80": true,
		"": false, "8080": false, "127.0.0.1": false, ":70000": false, ":-1": false, "a b:80": false, ":nosuchservice": false,
	} {
		if err := CheckAddr(addr); (err == nil) != ok {
			t.Errorf("CheckAddr(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

func TestParseAddr(t *testing.T) {
	long := "/" + strings.Repeat("x", 107)
	for _, tt := range []struct {
		in   string
		want Addr
		err  string
	}{
		{":8080", Addr{"tcp", ":8080"}, ""},
		{"localhost:http", Addr{"tcp", "localhost:http"}, ""},
		{"[::1]:443", Addr{"tcp", "[::1]:443"}, ""},
		{"tcp:127.0.0.1:80", Addr{"tcp", "127.0.0.1:80"}, ""},
		{"udp:127.0.0.1:5353", Addr{"udp", "127.0.0.1:5353"}, ""},
		{"unix:/run/app/admin.sock", Addr{"unix", "/run/app/admin.sock"}, ""},
		{"unix:rel.sock", Addr{"unix", "rel.sock"}, ""},
		{"unix:@handoff", Addr{"unix", "@handoff"}, ""},
		{"unix:", Addr{}, "needs a path"},
		{"unix:" + long, Addr{}, "more than the 107"},
		{"quic:127.0.0.1:443", Addr{}, "unknown address scheme"},
		{"http://127.0.0.1:80", Addr{}, "unknown address scheme"},
		{"udp:nope", Addr{}, "missing port"},
	} {
		got, err := ParseAddr(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseAddr(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseAddr(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestSameAddr(t *testing.T) {
	any4 := &net.TCPAddr{IP: net.IPv4zero, Port: 8080}
	any6 := &net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}
	lo := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	tests := []struct {
		want string
		got  net.Addr
		same bool
	}{
		{":8080", any4, true},
		{":8080", any6, true},
		{":8080", lo, false},
		{"0.0.0.0:8080", any6, true},
		{"127.0.0.1:8080", lo, true},
		{"127.0.0.1:8080", any4, false},
		{"127.0.0.1:8081", lo, false},
		{"127.0.0.1:0", lo, true},
		{"localhost:8080", lo, true},
		{"127.0.0.1:http-alt", lo, true},
		{"garbage", lo, false},
		{":8080", &net.UnixAddr{Name: "/x", Net: "unix"}, false},
		{"unix:/x", &net.UnixAddr{Name: "/x", Net: "unix"}, true},
		{"unix:/y", &net.UnixAddr{Name: "/x", Net: "unix"}, false},
		{"unix:@x", &net.UnixAddr{Name: "@x", Net: "unix"}, true},
		{"udp:127.0.0.1:53", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}, true},
		{"127.0.0.1:53", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}, false},
		{"udp:127.0.0.1:53", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}, false},
	}
	for _, tt := range tests {
		want, err := ParseAddr(tt.want)
		if err != nil {
			want = Addr{Network: "tcp", Address: tt.want}
		}
		if got := SameAddr(want, tt.got); got != tt.same {
			t.Errorf("SameAddr(%q, %v) = %v, want %v", tt.want, tt.got, got, tt.same)
		}
	}
}

// serveConns accepts on a tracked listener and runs fn on each conn.
func trackedPair(t *testing.T, initial http.ConnState) (*Tracker, *Conn, net.Conn) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTracker(initial)
	ln := tr.Listen(raw)
	t.Cleanup(func() { ln.Close() })
	client, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	return tr, sc.(*Conn), client
}

func TestSweepClosesQuietIdleConnections(t *testing.T) {
	const grace, fin = time.Second, time.Second
	tr, c, client := trackedPair(t, http.StateNew)
	tr.ConnState(c, http.StateIdle)
	t0 := time.Now()
	// Each sweep says when the connection's next step is due.
	sweep := func(at time.Time, wantNext time.Time) {
		t.Helper()
		open, next := tr.Sweep(at, grace, fin)
		if open != tr.Len() {
			t.Fatalf("open = %d, want %d", open, tr.Len())
		}
		if !next.Equal(wantNext) {
			t.Fatalf("next sweep due %v after t0, want %v", next.Sub(t0), wantNext.Sub(t0))
		}
	}
	sweep(t0, t0.Add(grace))
	// Not yet: the grace period runs from the first sweep that saw it idle.
	sweep(t0.Add(grace/2), t0.Add(grace))
	client.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := client.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("closed before the grace period: %v", err)
	}
	// After it: half-closed, the client reads a clean end of stream.
	sweep(t0.Add(grace), t0.Add(grace+fin))
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after grace: %v, want EOF", err)
	}
	if tr.Len() != 1 {
		t.Fatal("a half-closed connection is still open until finWait")
	}
	sweep(t0.Add(grace+fin), time.Time{})
	if n := tr.Len(); n != 0 {
		t.Fatalf("%d open after finWait, want 0", n)
	}
}

func TestSweepSparesBusyConnections(t *testing.T) {
	const grace = time.Second
	t0 := time.Now()
	t.Run("active", func(t *testing.T) {
		tr, c, _ := trackedPair(t, http.StateNew)
		tr.ConnState(c, http.StateActive)
		for i := range 5 {
			if _, next := tr.Sweep(t0.Add(time.Duration(i)*grace), grace, grace); !next.IsZero() {
				t.Fatalf("an active connection asks for a sweep at %v; its end will say so", next)
			}
		}
		if tr.Len() != 1 {
			t.Fatal("an active connection was closed")
		}
	})
	t.Run("http2", func(t *testing.T) {
		tr, c, _ := trackedPair(t, http.StateNew)
		tr.ConnState(c, http.StateIdle)
		tr.MarkHTTP2(c)
		for i := range 5 {
			tr.Sweep(t0.Add(time.Duration(i)*grace), grace, grace)
		}
		if tr.Len() != 1 {
			t.Fatal("an HTTP/2 connection was closed by the sweep")
		}
	})
	t.Run("bytes waiting", func(t *testing.T) {
		tr, c, client := trackedPair(t, http.StateNew)
		tr.ConnState(c, http.StateIdle)
		tr.Sweep(t0, grace, grace)
		// A request arrives and waits unread in the kernel.
		io.WriteString(client, "GET / HTTP/1.1\r\n")
		deadline := time.Now().Add(5 * time.Second)
		for pending(c.Conn) == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		at := t0.Add(2 * grace)
		if _, next := tr.Sweep(at, grace, grace); !next.Equal(at.Add(pendingRetry)) {
			t.Fatalf("next sweep in %v, want %v", next.Sub(at), pendingRetry)
		}
		if tr.Len() != 1 {
			t.Fatal("closed a connection with a request waiting")
		}
	})
	t.Run("reading", func(t *testing.T) {
		tr, c, client := trackedPair(t, http.StateNew)
		tr.ConnState(c, http.StateIdle)
		tr.Sweep(t0, grace, grace)
		io.WriteString(client, "x")
		c.Read(make([]byte, 1)) // consumed: no bytes waiting, but activity
		tr.Sweep(t0.Add(grace), grace, grace)
		if tr.Len() != 1 {
			t.Fatal("closed a connection that just read")
		}
		tr.Sweep(t0.Add(2*grace), grace, grace)
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := client.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("once quiet again: %v, want EOF", err)
		}
	})
}

// Reads are counted only once the tracker sweeps: serving outside a
// drain pays no atomic add per read.
func TestReadsCountedOnlyWhileSweeping(t *testing.T) {
	tr, c, client := trackedPair(t, http.StateNew)
	buf := make([]byte, 8)
	io.WriteString(client, "before")
	if n, err := c.Read(buf); err != nil || n == 0 {
		t.Fatal(n, err)
	}
	if n := c.reads.Load(); n != 0 {
		t.Fatalf("%d bytes counted before any sweep", n)
	}
	tr.Sweep(time.Now(), time.Second, time.Second)
	io.WriteString(client, "after")
	n, err := c.Read(buf)
	if err != nil || n == 0 {
		t.Fatal(n, err)
	}
	if got := c.reads.Load(); got != uint64(n) {
		t.Fatalf("%d bytes counted once sweeping, want %d", got, n)
	}
}

// A connection accepted once sweeps have begun counts from its first read.
func TestReadsCountedOnConnectionsAcceptedWhileSweeping(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTracker(http.StateNew)
	ln := tr.Listen(raw)
	defer ln.Close()
	tr.Sweep(time.Now(), time.Second, time.Second)
	client, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	io.WriteString(client, "first")
	n, err := nc.Read(make([]byte, 8))
	if err != nil || n == 0 {
		t.Fatal(n, err)
	}
	if got := nc.(*Conn).reads.Load(); got != uint64(n) {
		t.Fatalf("%d bytes counted, want %d", got, n)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestHijackHandsTheConnectionOver(t *testing.T) {
	tr, c, _ := trackedPair(t, http.StateNew)
	released := 0
	tr.OnHijack = func(got *Conn) func() {
		if got != c {
			t.Errorf("OnHijack got %p, want %p", got, c)
		}
		return func() { released++ }
	}
	tr.ConnState(c, http.StateHijacked)
	if tr.Len() != 0 {
		t.Fatal("the tracker still counts a hijacked connection")
	}
	c.Close()
	c.Close()
	if released != 1 {
		t.Fatalf("release called %d times, want 1", released)
	}
}

func TestCloseAll(t *testing.T) {
	tr, _, client := trackedPair(t, http.StateActive)
	if n := tr.CloseAll(context.Canceled); n != 1 {
		t.Fatalf("CloseAll = %d, want 1", n)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open")
	}
	if tr.Len() != 0 {
		t.Fatal("tracker not empty")
	}
}

func TestUnwrap(t *testing.T) {
	c := &Conn{}
	if Unwrap(c) != c || Unwrap(tls.Server(c, &tls.Config{})) != c || Unwrap(&net.TCPConn{}) != nil || Unwrap(nil) != nil {
		t.Fatal("Unwrap does not find the tracked connection")
	}
}

// Changed reports what a drain waits for: a connection leaving, and,
// once sweeps have begun, a connection changing state.
func TestChangedReportsEndsAndStates(t *testing.T) {
	tr, c, _ := trackedPair(t, http.StateNew)
	var calls atomic.Int32
	tr.Changed = func() { calls.Add(1) }
	tr.ConnState(c, http.StateActive)
	tr.ConnState(c, http.StateIdle)
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d calls for state changes before any sweep, want 0", n)
	}
	tr.Sweep(time.Now(), time.Second, time.Second)
	tr.ConnState(c, http.StateActive)
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d calls after a state change while sweeping, want 1", n)
	}
	c.Close()
	c.Close()
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d calls after the connection closed (twice), want 2", n)
	}
}

// handingListener's Accept takes a connection from its channel, even once
// closed: the kernel handed one over just as the listener was closed.
type handingListener struct {
	net.Listener
	conns   chan net.Conn
	waiting chan struct{} // closed once Accept waits
}

func (l *handingListener) Accept() (net.Conn, error) {
	close(l.waiting)
	c, ok := <-l.conns
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}

func (l *handingListener) Close() error { return nil }

// TestAcceptInProgressCountsAsOpen: once the listener is closed, an Accept
// still in progress counts as an open connection (a drain waits for it)
// until the connection it returns is tracked, and the watcher hears when
// the last one returns.
func TestAcceptInProgressCountsAsOpen(t *testing.T) {
	inner := &handingListener{conns: make(chan net.Conn, 1), waiting: make(chan struct{})}
	tr := NewTracker(http.StateNew)
	var changes atomic.Int32
	tr.Changed = func() { changes.Add(1) }
	ln := tr.Listen(inner)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	<-inner.waiting
	if n := tr.Len(); n != 0 {
		t.Fatalf("Len = %d with the listener open, want 0: an Accept waiting for a client is not a connection", n)
	}
	ln.Close()
	if n := tr.Len(); n != 1 {
		t.Fatalf("Len = %d with an Accept in progress on the closed listener, want 1", n)
	}
	server, client := net.Pipe()
	defer client.Close()
	inner.conns <- server
	c := <-accepted
	if n := tr.Len(); n != 1 {
		t.Fatalf("Len = %d with the accepted connection open, want 1", n)
	}
	if changes.Load() == 0 {
		t.Error("the watcher was not told that the last Accept returned")
	}
	c.Close()
	if n := tr.Len(); n != 0 {
		t.Fatalf("Len = %d after the connection closed, want 0", n)
	}
}
