package listen

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/handoff-go/handoff/internal/ticks"
)

// Tracker knows every open connection accepted by its listeners and, while
// a server drains, which of them can be closed without cutting a client.
//
// HTTP servers report connection states to ConnState. A connection that is
// active (a request in progress), speaks HTTP/2 (it closes itself after
// GOAWAY) or was hijacked is never closed by Sweep. An idle or new one is
// closed only once it has read nothing for a grace period, has no unread
// bytes waiting in the kernel, and has first been half-closed so the
// client sees an orderly end of stream rather than a reset.
type Tracker struct {
	// OnHijack, if set, is called when an HTTP handler hijacks a
	// connection: the tracker forgets it, and the returned func is called
	// once the connection is closed.
	OnHijack func(*Conn) (release func())
	// Changed, if set, is called when a connection leaves the tracker
	// and, once sweeps have begun, when one changes state: a drain waiting
	// for connections to end looks again at once instead of polling.
	Changed func()

	initial http.ConnState
	// The HTTP/1 idle and header timeouts kept here (timeouts.go), or 0.
	idle, header time.Duration
	// counting is set by the first Sweep: from then on connections count
	// the bytes they read. Until a drain nothing needs the count, and
	// reads, the hottest path of a server, skip the atomic add.
	counting atomic.Bool

	clock   clock          // for deadlines kept here (deadline.go)
	reapers sync.WaitGroup // the reaper, while one runs

	mu      sync.Mutex
	conns   map[*Conn]struct{}
	ln      *Listener // the listener, once Listen was called
	stopped bool
	ticks   ticks.Ticks // the last reaper's, closed by Stop
}

// NewTracker returns a tracker whose new connections start in state
// initial: http.StateNew for HTTP, http.StateActive for raw TCP
// connections, which are never idle.
func NewTracker(initial http.ConnState) *Tracker {
	t := &Tracker{initial: initial, conns: make(map[*Conn]struct{})}
	t.clock.after, t.clock.tick = coarseAfter, coarseTick
	return t
}

// Listener tracks every connection its embedded listener accepts.
type Listener struct {
	net.Listener
	t         *Tracker
	once      sync.Once
	accepting chan struct{}

	// Accept calls in progress, and whether Close was called: once it
	// was, each call still in progress is about to return, perhaps with
	// a connection the kernel handed it just before, and counts as open
	// (see Tracker.Len).
	inAccept atomic.Int32
	closed   atomic.Bool
}

// Listen wraps ln. A tracker has one listener at most.
func (t *Tracker) Listen(ln net.Listener) *Listener {
	l := &Listener{Listener: ln, t: t, accepting: make(chan struct{})}
	t.mu.Lock()
	t.ln = l
	t.mu.Unlock()
	return l
}

// Close closes the listener. Accept calls in progress count as open
// connections until they return.
func (l *Listener) Close() error {
	l.closed.Store(true)
	return l.Listener.Close()
}

// settling is how many Accept calls are still in progress on the closed
// listener.
func (l *Listener) settling() int {
	if l == nil || !l.closed.Load() {
		return 0
	}
	return int(l.inAccept.Load())
}

// acceptDone ends an Accept call; the last one to return from a closed
// listener tells the tracker's watcher.
func (l *Listener) acceptDone() {
	if l.inAccept.Add(-1) == 0 && l.closed.Load() {
		l.t.changed()
	}
}

// Accepting returns a channel closed once Accept has been called: the
// server on the listener has started to accept.
func (l *Listener) Accepting() <-chan struct{} { return l.accepting }

// Accept waits for a connection and tracks it.
func (l *Listener) Accept() (net.Conn, error) {
	l.once.Do(func() { close(l.accepting) })
	l.inAccept.Add(1)
	nc, err := l.Listener.Accept()
	if err != nil {
		l.acceptDone()
		return nil, err
	}
	c := &Conn{Conn: nc, t: l.t}
	c.state.Store(int32(l.t.initial))
	c.release = func() { l.t.remove(c) }
	l.t.mu.Lock()
	l.t.conns[c] = struct{}{}
	c.count.Store(l.t.counting.Load()) // under t.mu: Sweep sets both under it
	l.t.mu.Unlock()
	l.acceptDone()                  // counted in conns from here on
	c.startPhase(l.t.header, false) // once the reaper can see c
	return c, nil
}

// Conn is a tracked connection.
type Conn struct {
	net.Conn
	t     *Tracker
	reads atomic.Uint64 // bytes read since the tracker began counting, so a sweep sees a request arrive
	state atomic.Int32  // http.ConnState
	phase atomic.Int64  // the idle or header timeout running (timeouts.go)
	h2    atomic.Bool
	count atomic.Bool // the tracker counts reads: a copy of its flag where Read finds it at hand

	mu      sync.Mutex
	rd, wd  deadline // see deadline.go
	exact   bool     // hijacked: every deadline goes to the socket
	closed  bool
	release func()
	cancel  context.CancelCauseFunc // the connection's context, if the server gave it one
	once    sync.Once
	err     error

	// Guarded by Tracker.mu; the sweep's own clock.
	seen   uint64
	quiet  time.Time // since when the sweep has seen no reads
	finned time.Time // when the sweep half-closed the connection
}

// Read counts the bytes read, once the tracker sweeps, and starts the
// header timeout of an idle connection.
func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		if p := c.phase.Load(); p&phaseIdle != 0 {
			c.wake(p)
		}
		if c.count.Load() {
			c.reads.Add(uint64(n))
		}
	}
	return n, err
}

// ReadFrom lets io.Copy into the connection use sendfile or splice.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// SetCancel gives c the cancel function of its context, for Kill.
func (c *Conn) SetCancel(fn context.CancelCauseFunc) {
	c.mu.Lock()
	c.cancel = fn
	c.mu.Unlock()
}

// Kill cancels c's context with cause, so that its handler learns why,
// then closes c.
func (c *Conn) Kill(cause error) {
	c.mu.Lock()
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel(cause)
	}
	c.Close()
}

// NetConn returns the connection that c wraps.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// Close closes the connection and stops tracking it. It is safe to call
// more than once; later calls return the first call's error.
func (c *Conn) Close() error {
	c.once.Do(func() {
		c.err = c.Conn.Close()
		c.mu.Lock()
		c.closed = true
		release := c.release
		c.release = nil
		c.mu.Unlock()
		if release != nil {
			release()
		}
	})
	return c.err
}

// setRelease replaces what Close calls, and reports false if the
// connection is already closed.
func (c *Conn) setRelease(fn func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.release = fn
	return true
}

func (c *Conn) closeWrite() {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		return
	}
	c.Close()
}

// Unwrap finds the tracked connection under nc (a *Conn, or a *tls.Conn
// over one), or returns nil.
func Unwrap(nc net.Conn) *Conn {
	for nc != nil {
		switch c := nc.(type) {
		case *Conn:
			return c
		case *tls.Conn:
			nc = c.NetConn()
		case interface{ NetConn() net.Conn }:
			nc = c.NetConn()
		default:
			return nil
		}
	}
	return nil
}

func (t *Tracker) remove(c *Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	t.changed()
}

func (t *Tracker) changed() {
	if t.Changed != nil {
		t.Changed()
	}
}

// ConnState records a state change reported by an http.Server. Use it as
// (or call it from) the server's ConnState hook.
func (t *Tracker) ConnState(nc net.Conn, st http.ConnState) {
	c := Unwrap(nc)
	if c == nil {
		return
	}
	switch st {
	case http.StateHijacked:
		c.makeExact()
		t.remove(c)
		var release func()
		if t.OnHijack != nil {
			release = t.OnHijack(c)
		}
		if !c.setRelease(release) && release != nil {
			release()
		}
	case http.StateClosed:
	default:
		c.state.Store(int32(st))
		c.setPhase(st)
		if t.counting.Load() {
			t.changed()
		}
	}
}

// MarkHTTP2 records that nc speaks HTTP/2; Sweep leaves it to GOAWAY.
func (t *Tracker) MarkHTTP2(nc net.Conn) {
	if c := Unwrap(nc); c != nil {
		c.h2.Store(true)
		c.phase.Store(0) // HTTP/2 keeps its own timeouts
	}
}

// Handshaking reports whether a connection has yet to say what it speaks:
// one in state new that is not known to speak HTTP/2 (a TLS handshake in
// progress, or a client that has sent nothing yet).
func (t *Tracker) Handshaking() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.conns {
		if !c.h2.Load() && http.ConnState(c.state.Load()) == http.StateNew {
			return true
		}
	}
	return false
}

// Len is the number of open tracked connections, with the Accept calls
// still in progress on the closed listener: a drain that counted only
// the connections could end while an Accept holds one the kernel has just
// handed it, and the process's exit would cut it.
func (t *Tracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns) + t.ln.settling()
}

// pendingRetry is how soon a sweep looks again at a quiet connection that
// it left open because bytes were waiting to be read.
const pendingRetry = 20 * time.Millisecond

// Sweep is one step of a drain. Every idle or new HTTP/1 connection that
// has read nothing for grace and has no unread bytes is half-closed; one
// half-closed for finWait is closed. It returns how many connections
// remain open, and when the next of them will be due for a step if
// nothing else happens (zero if none: the others wait for their requests
// to end, which Changed reports).
func (t *Tracker) Sweep(now time.Time, grace, finWait time.Duration) (open int, next time.Time) {
	// Reads before the first sweep do not matter: it takes each
	// connection's count as its starting point.
	var fin, kill []*Conn
	t.mu.Lock()
	t.counting.Store(true)
	for c := range t.conns {
		c.count.Store(true)
		if st := http.ConnState(c.state.Load()); c.h2.Load() || (st != http.StateIdle && st != http.StateNew) {
			c.quiet = time.Time{}
			continue
		}
		if r := c.reads.Load(); c.quiet.IsZero() || r != c.seen {
			c.seen, c.quiet = r, now
			next = Earliest(next, now.Add(grace))
			continue
		}
		switch {
		case !c.finned.IsZero():
			if due := c.finned.Add(finWait); !now.Before(due) {
				kill = append(kill, c)
			} else {
				next = Earliest(next, due)
			}
		case now.Sub(c.quiet) < grace:
			next = Earliest(next, c.quiet.Add(grace))
		case pending(c.Conn) > 0:
			next = Earliest(next, now.Add(pendingRetry))
		default:
			c.finned = now
			fin = append(fin, c)
			next = Earliest(next, now.Add(finWait))
		}
	}
	open = len(t.conns) - len(kill) // the killed are closed below
	t.mu.Unlock()
	for _, c := range fin {
		c.closeWrite()
	}
	for _, c := range kill {
		c.Close()
	}
	return open, next
}

// Earliest returns the earlier of a and b, where zero means never.
func Earliest(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// CloseAll kills every tracked connection (see Conn.Kill) and returns how
// many it closed.
func (t *Tracker) CloseAll(cause error) int {
	t.mu.Lock()
	all := make([]*Conn, 0, len(t.conns))
	for c := range t.conns {
		all = append(all, c)
	}
	t.mu.Unlock()
	for _, c := range all {
		c.Kill(cause)
	}
	return len(all)
}
