package server

import (
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/listen"
)

// memConn is a keep-alive client in memory: it offers its next request
// once the response to the last one is written, like a client waiting for
// each response, so that a benchmark measures what the server spends on a
// request without the system calls of a socket. Read honours a read
// deadline in the past (net/http's way to stop its background read).
type memConn struct {
	req []byte

	mu       sync.Mutex
	cond     *sync.Cond
	left     int  // requests still to send
	ready    bool // a request is waiting to be read
	off      int
	deadline time.Time
	closed   bool
	done     chan struct{} // closed when the connection is
}

func newMemConn(req string, n int) *memConn {
	c := &memConn{req: []byte(req), left: n, done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	c.next()
	return c
}

// next offers the next request, if one is left. Called with mu held, or
// before the connection is shared.
func (c *memConn) next() {
	if c.left > 0 {
		c.left--
		c.ready, c.off = true, 0
	}
}

var errMemClosed = errors.New("memConn closed")

func (c *memConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		switch {
		case c.closed:
			return 0, errMemClosed
		case !c.deadline.IsZero() && !c.deadline.After(time.Now()):
			return 0, os.ErrDeadlineExceeded
		case c.ready:
			n := copy(b, c.req[c.off:])
			if c.off += n; c.off == len(c.req) {
				c.ready = false
			}
			return n, nil
		case c.left == 0:
			return 0, errMemClosed // the client is done: EOF, as it were
		}
		c.cond.Wait()
	}
}

// Write takes one whole response per call (a small response is flushed
// at once) and offers the next request.
func (c *memConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, errMemClosed
	}
	c.next()
	c.cond.Broadcast()
	return len(b), nil
}

func (c *memConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.done)
		c.cond.Broadcast()
	}
	return nil
}

func (c *memConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	c.cond.Broadcast()
	return nil
}

func (c *memConn) SetDeadline(t time.Time) error    { return c.SetReadDeadline(t) }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }
func (c *memConn) LocalAddr() net.Addr              { return memAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return memAddr{} }

type memAddr struct{}

func (memAddr) Network() string { return "mem" }
func (memAddr) String() string  { return "mem" }

// memListener hands out the connections sent on c until closed.
type memListener struct {
	c      chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newMemListener() *memListener {
	return &memListener{c: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *memListener) Addr() net.Addr { return memAddr{} }

// memHandler answers every request with a two-byte body.
var memHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })

const memRequest = "GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\n\r\n"

// BenchmarkKeepAliveRequest measures the server's side of a keep-alive
// HTTP/1.1 request on a connection in memory, served by net/http alone
// and by net/http as handoff configures it (its tracked connection, state
// hook, handler wrapper and kept timeouts). The two serve in turns, a
// connection of 2,000 requests each, so that a machine whose speed drifts
// slows both alike; it reports each one's time per request and their
// ratio, handoff's cost relative to net/http's.
func BenchmarkKeepAliveRequest(b *testing.B) {
	const chunk = 2000
	type side struct {
		ln      *memListener
		errc    chan error
		elapsed time.Duration
	}
	start := func(serve func(net.Listener) error, ln *memListener) *side {
		sd := &side{ln: ln, errc: make(chan error, 1)}
		go func() { sd.errc <- serve(ln) }()
		return sd
	}
	plain := start((&http.Server{Handler: memHandler}).Serve, newMemListener())

	s := New()
	spec := &listen.Spec{}
	spec.SetKind(listen.KindHTTP)
	spec.Handler = memHandler
	hln := newMemListener()
	svc, err := s.newService(decl{name: "bench", spec: spec}, hln, false, links{})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.tracker.Stop()
	handoff := start(svc.hs.Serve, hln)

	one := func(sd *side, n int) {
		c := newMemConn(memRequest, n)
		t0 := time.Now()
		sd.ln.c <- c
		<-c.done // n requests answered, and the server closed the connection
		sd.elapsed += time.Since(t0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for left := b.N; left > 0; left -= chunk {
		n := min(left, chunk)
		one(plain, n)
		one(handoff, n)
	}
	b.StopTimer()
	for _, sd := range []*side{plain, handoff} {
		sd.ln.Close()
		<-sd.errc
	}
	b.ReportMetric(float64(plain.elapsed.Nanoseconds())/float64(b.N), "net-http-ns/req")
	b.ReportMetric(float64(handoff.elapsed.Nanoseconds())/float64(b.N), "handoff-ns/req")
	b.ReportMetric(float64(handoff.elapsed)/float64(plain.elapsed), "handoff/net-http")
}
