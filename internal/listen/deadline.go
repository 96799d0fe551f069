package listen

import (
	"sync/atomic"
	"time"

	"github.com/handoff-go/handoff/internal/ticks"
)

// Deadlines far ahead are kept by the tracker, not by the runtime.
//
// net/http moves a connection's read deadline four times per keep-alive
// request when ReadHeaderTimeout and IdleTimeout are set, as they are by
// default here: an idle timeout after the response, none while the next
// request begins, a header timeout, none again. Each one that is not zero
// re-arms a runtime timer (a clock read, the timer heap's lock, often a
// wake-up of another P), a few per cent of a small request's cost. Those
// deadlines are seconds or minutes away and nearly always replaced before
// they expire. A deadline at least coarseAfter ahead is therefore only
// written down; the tracker's reaper, which looks once every coarseTick
// while such deadlines exist, sets an expired one on the socket, and the
// read or write in progress fails with os.ErrDeadlineExceeded as it would
// have. Such a deadline fires up to coarseTick late. Nearer deadlines, and
// every deadline of a hijacked connection, which the tracker no longer
// sees, go to the socket at once.
const (
	coarseAfter = 5 * time.Second
	coarseTick  = time.Second
)

// deadline is one direction's deadline of a Conn, changed under Conn.mu.
// Clearing a deadline that is neither kept nor on the socket, which
// net/http does a few times per request, reads both without the lock:
// whoever sets the socket's deadline sets onConn before it clears at.
type deadline struct {
	at     atomic.Int64 // a deadline kept by the tracker, nanoseconds since epoch; 0 if none
	onConn atomic.Bool  // the socket has a deadline of its own
}

// none reports whether d has no deadline at all, kept or on the socket.
func (d *deadline) none() bool { return d.at.Load() == 0 && !d.onConn.Load() }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline (see coarseAfter).
func (c *Conn) SetReadDeadline(t time.Time) error {
	if t.IsZero() && c.rd.none() {
		return nil
	}
	c.mu.Lock()
	send, on := c.keep(&c.rd, t)
	var err error
	if send {
		err = c.Conn.SetReadDeadline(on)
	}
	c.mu.Unlock()
	return err
}

// SetWriteDeadline sets the write deadline (see coarseAfter).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() && c.wd.none() {
		return nil
	}
	c.mu.Lock()
	send, on := c.keep(&c.wd, t)
	var err error
	if send {
		err = c.Conn.SetWriteDeadline(on)
	}
	c.mu.Unlock()
	return err
}

// keep records the deadline t in d, and says whether the socket's must
// change, to what. c.mu is held. (Two methods and no defer: net/http calls
// these four times a request.)
func (c *Conn) keep(d *deadline, t time.Time) (send bool, on time.Time) {
	if t.IsZero() {
		d.at.Store(0)
		return d.onConn.Swap(false), t // nothing to clear if the socket has no deadline
	}
	// A deadline before epoch (net/http's way to wake a read at once) goes
	// to the socket without a look at the tracker's clock.
	if at := int64(t.Sub(epoch)); at > 0 && !c.exact && at-c.t.now() >= int64(c.t.clock.after) {
		// Written before the reaper is made sure of (see reap).
		d.at.Store(at)
		if c.t.startReaper() {
			return d.onConn.Swap(false), time.Time{}
		}
	}
	d.onConn.Store(true)
	d.at.Store(0)
	return true, t
}

// expire sets on the socket the deadlines kept for it that are due at
// now, and reports whether any is left to keep.
func (c *Conn) expire(now int64) (left bool) {
	left = c.expirePhase(now)
	if r, w := c.rd.at.Load(), c.wd.at.Load(); (r == 0 || r > now) && (w == 0 || w > now) {
		return left || r != 0 || w != 0 // nothing due: no lock taken
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked(&c.rd, now, c.Conn.SetReadDeadline)
	c.expireLocked(&c.wd, now, c.Conn.SetWriteDeadline)
	return left || c.rd.at.Load() != 0 || c.wd.at.Load() != 0
}

func (c *Conn) expireLocked(d *deadline, now int64, set func(time.Time) error) {
	if at := d.at.Load(); at != 0 && at <= now {
		d.onConn.Store(true)
		d.at.Store(0)
		set(epoch.Add(time.Duration(at))) // in the past: what waits on it fails now
	}
}

// makeExact hands the deadlines kept for c to its socket, and makes every
// later one go there too: c is leaving the tracker (hijacked).
func (c *Conn) makeExact() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.exact = true
	c.phase.Store(0)
	for _, d := range []struct {
		d   *deadline
		set func(time.Time) error
	}{{&c.rd, c.Conn.SetReadDeadline}, {&c.wd, c.Conn.SetWriteDeadline}} {
		if at := d.d.at.Load(); at != 0 {
			d.d.onConn.Store(true)
			d.d.at.Store(0)
			d.set(epoch.Add(time.Duration(at)))
		}
	}
}

// epoch is where kept deadlines count from, on the monotonic clock: a
// change of the wall clock moves none of them.
var epoch = time.Now()

// clock is the tracker's coarse time, read where net/http has just read
// the exact time to compute a deadline; the reaper keeps it up to date.
type clock struct {
	after, tick time.Duration // coarseAfter and coarseTick, but in tests

	reaping atomic.Bool  // a reaper runs
	since   atomic.Int64 // its last look at the time, nanoseconds since epoch
}

// now is the time since epoch to within coarseTick while the reaper runs,
// and exactly when it does not (its last look may then be long ago).
func (t *Tracker) now() int64 {
	if t.clock.reaping.Load() {
		return t.clock.since.Load()
	}
	return int64(time.Since(epoch))
}

// startReaper makes sure a reaper runs, and reports false if none can
// (the tracker is stopped): deadlines must then go to the sockets.
func (t *Tracker) startReaper() bool {
	if t.clock.reaping.Load() {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	// A compare-and-swap, as the reaper's own decision to go on is: of
	// the two, one reaper runs, never two.
	t.clock.since.Store(int64(time.Since(epoch)))
	if t.clock.reaping.CompareAndSwap(false, true) {
		t.reapers.Add(1)
		t.ticks = ticks.New(t.clock.tick)
		go t.reap(t.ticks)
	}
	return true
}

// reap expires kept deadlines at every tick, and ends when none is left,
// or at Stop. Its ticks are no runtime timer (see internal/ticks): every
// keep-alive connection has a deadline kept here, so a busy server has a
// reaper most of the time.
func (t *Tracker) reap(tk ticks.Ticks) {
	defer t.reapers.Done()
	defer tk.Close()
	var conns []*Conn
	for tk.Wait() {
		now := int64(time.Since(epoch))
		t.clock.since.Store(now)
		conns = t.snapshot(conns[:0])
		left := false
		for _, c := range conns {
			left = c.expire(now) || left
		}
		clear(conns)
		if left {
			continue
		}
		// Stop, unless a deadline was set meanwhile: its setter either
		// sees reaping false and starts a reaper, or is seen here.
		t.clock.reaping.Store(false)
		if !t.anyKept() || !t.clock.reaping.CompareAndSwap(false, true) {
			return
		}
	}
	t.clock.reaping.Store(false) // stopped
}

// anyKept reports whether a tracked connection has a kept deadline or a
// phase deadline.
func (t *Tracker) anyKept() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.conns {
		if c.rd.at.Load() != 0 || c.wd.at.Load() != 0 || c.phase.Load() != 0 {
			return true
		}
	}
	return false
}

// snapshot appends the tracked connections to buf.
func (t *Tracker) snapshot(buf []*Conn) []*Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.conns {
		buf = append(buf, c)
	}
	return buf
}

// Stop ends the reaper and waits for it; deadlines set from now on go to
// the sockets. The server calls it once the listener is done.
func (t *Tracker) Stop() {
	t.mu.Lock()
	if !t.stopped {
		t.stopped = true
		if t.ticks != nil {
			t.ticks.Close()
		}
	}
	t.mu.Unlock()
	t.reapers.Wait()
}
