package listen

import (
	"net/http"
	"time"
)

// An HTTP/1 server's idle and header timeouts, kept by the tracker.
//
// With IdleTimeout and ReadHeaderTimeout set, net/http reads the clock
// twice per keep-alive request only to compute them: once for the idle
// deadline after the response, once for the header deadline when the next
// request's first bytes arrive. On a virtual machine a clock read costs
// as much as a small syscall, and these two are a third of a small
// request's clock reads. The tracker sees both moments anyway (the
// server reports the connection idle; the first read of the next request
// passes through Conn.Read), so it dates them on its coarse clock
// instead, and its reaper fails the read in progress once one is
// exceeded, as the server's deadline would have.
//
// A connection's phase deadline says which of the two is running: the
// deadline in nanoseconds since epoch, shifted left by one, with the low
// bit set while the connection is idle (the next read starts the header
// timeout).

const phaseIdle = 1

// TakeTimeouts moves hs's idle and header timeouts to t where they are
// long enough for its coarse clock (coarseAfter), and tells hs that it
// has none of its own for them; shorter ones stay with hs. Call it before
// hs serves, after everything else has configured it, and give HTTP/2
// servers built from hs its timeouts before the call: HTTP/2 keeps its
// own.
//
// Kept here, a timeout fires between its length and its length plus two
// ticks of the coarse clock (two seconds) after it starts. The header
// timeout of a new connection runs from its accept to its first request's
// headers, a TLS handshake included, where net/http would allow the
// handshake and the headers a timeout each.
func (t *Tracker) TakeTimeouts(hs *http.Server) {
	idle := hs.IdleTimeout
	if idle == 0 {
		idle = hs.ReadTimeout
	}
	if idle >= t.clock.after {
		t.idle, hs.IdleTimeout = idle, -1
	}
	header := hs.ReadHeaderTimeout
	if header == 0 {
		header = hs.ReadTimeout
	}
	if header >= t.clock.after {
		t.header, hs.ReadHeaderTimeout = header, -1
	}
}

// Timeouts returns the idle and header timeouts kept by t (0: none).
func (t *Tracker) Timeouts() (idle, header time.Duration) { return t.idle, t.header }

// phaseAt returns the phase deadline d from now. It is dated a tick
// late: the coarse clock may lag the time by up to a tick, and a timeout
// must not fire early.
func (t *Tracker) phaseAt(d time.Duration, idle bool) int64 {
	p := (t.now() + int64(d) + int64(t.clock.tick)) << 1
	if idle {
		p |= phaseIdle
	}
	return p
}

// startPhase gives c the phase deadline d from now, or none if d is 0. The
// deadline is written before the reaper is made sure of, as every kept
// deadline is: a reaper that is about to end sees it, or the next one is
// started (see reap).
func (c *Conn) startPhase(d time.Duration, idle bool) {
	if d <= 0 {
		c.phase.Store(0)
		return
	}
	p := c.t.phaseAt(d, idle)
	c.phase.Store(p)
	if !c.t.startReaper() {
		c.phase.CompareAndSwap(p, 0) // stopped: nothing would enforce it
	}
}

// setPhase starts the phase of c's new state: the idle timeout once a
// request is over, none while one is served.
func (c *Conn) setPhase(st http.ConnState) {
	switch st {
	case http.StateIdle:
		c.startPhase(c.t.idle, true)
	case http.StateActive:
		c.phase.Store(0)
	}
}

// wake starts the header timeout of an idle connection that has read the
// first bytes of its next request; p is the idle phase it read. If the
// reaper has just expired the idle phase, it stays expired.
func (c *Conn) wake(p int64) {
	var next int64
	if d := c.t.header; d > 0 {
		next = c.t.phaseAt(d, false)
	}
	if c.phase.CompareAndSwap(p, next) && next != 0 && !c.t.startReaper() {
		c.phase.CompareAndSwap(next, 0)
	}
}

// expirePhase fails c's reads if its phase deadline is due at now, and
// reports whether a phase deadline is left to keep.
func (c *Conn) expirePhase(now int64) (left bool) {
	p := c.phase.Load()
	if p == 0 {
		return false
	}
	if p>>1 > now {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// onConn first: from here on, the server clearing its read deadline
	// reaches the socket (see deadline). If the phase changed since the
	// load (a request began, or its first bytes came), nothing fails. If
	// the first bytes come just after the expiry, the read that brought
	// them has returned: the server clears its read deadline before it
	// reads on, which takes the expiry away again, as it would take away
	// a deadline of its own that fired at that moment.
	c.rd.onConn.Store(true)
	if c.phase.CompareAndSwap(p, 0) {
		c.rd.at.Store(0)
		c.Conn.SetReadDeadline(epoch.Add(time.Duration(now))) // the read in progress fails
	}
	return false
}
