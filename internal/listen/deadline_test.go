package listen

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// keptPair is trackedPair with a clock that makes kept deadlines testable:
// kept from 200ms ahead, looked at every 20ms. The caller stops tr.
func keptPair(t *testing.T) (tr *Tracker, c *Conn, client net.Conn) {
	tr, c, client = trackedPair(t, http.StateNew)
	tr.clock.after, tr.clock.tick = 200*time.Millisecond, 20*time.Millisecond
	return tr, c, client
}

// readDeadline tells where c's read deadline is: kept by the tracker, or
// on the socket.
func readDeadline(c *Conn) (kept, onConn bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rd.at.Load() != 0, c.rd.onConn.Load()
}

// deadlineConn records the deadlines that reach the socket.
type deadlineConn struct {
	net.Conn
	mu  sync.Mutex
	set []time.Time
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set = append(c.set, t)
	return nil
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *deadlineConn) calls() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.set...)
}

// What reaches the socket: nothing for a far deadline, nor for clearing a
// deadline the socket does not have; a near one at once.
func TestDeadlinesReachingTheSocket(t *testing.T) {
	defer goleak.VerifyNone(t)
	tr := NewTracker(http.StateNew)
	defer tr.Stop()
	dc := &deadlineConn{}
	c := &Conn{Conn: dc, t: tr}

	c.SetReadDeadline(time.Now().Add(time.Minute))
	c.SetReadDeadline(time.Time{})
	c.SetWriteDeadline(time.Now().Add(2 * time.Minute))
	if got := dc.calls(); len(got) != 0 {
		t.Fatalf("far deadlines and clearing reached the socket: %v", got)
	}
	near := time.Now().Add(time.Second)
	c.SetReadDeadline(near)
	if got := dc.calls(); len(got) != 1 || !got[0].Equal(near) {
		t.Fatalf("a near deadline: socket got %v, want [%v]", got, near)
	}
	// A far deadline after a near one clears the socket's.
	c.SetReadDeadline(time.Now().Add(time.Minute))
	if got := dc.calls(); len(got) != 2 || !got[1].IsZero() {
		t.Fatalf("far after near: socket got %v, want the near one then zero", got)
	}
	c.SetReadDeadline(time.Time{})
	if got := dc.calls(); len(got) != 2 {
		t.Fatalf("clearing a kept deadline reached the socket: %v", got)
	}
}

// A kept deadline fails a read in progress, late by at most a tick, and
// not before it is due.
func TestKeptDeadlineFailsARead(t *testing.T) {
	defer goleak.VerifyNone(t)
	tr, c, _ := keptPair(t)
	defer tr.Stop()
	start := time.Now()
	due := start.Add(300 * time.Millisecond)
	c.SetReadDeadline(due)
	if kept, onConn := readDeadline(c); !kept || onConn {
		t.Fatal("the deadline was not kept by the tracker")
	}
	_, err := c.Read(make([]byte, 1))
	took := time.Since(start)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want a deadline error", err)
	}
	if took < 300*time.Millisecond || took > 2*time.Second {
		t.Fatalf("read failed after %v, want 300ms and a tick or so", took)
	}
}

// A kept deadline replaced before it is due never fires.
func TestReplacedDeadlineDoesNotFire(t *testing.T) {
	defer goleak.VerifyNone(t)
	tr, c, client := keptPair(t)
	defer tr.Stop()
	c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
	c.SetReadDeadline(time.Time{})
	go func() {
		time.Sleep(600 * time.Millisecond) // past the replaced deadline
		io.WriteString(client, "x")
	}()
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("read after a replaced deadline: %v", err)
	}
}

// A hijacked connection leaves the tracker: its kept deadline goes to the
// socket, and so do later ones; after Stop, every one does.
func TestDeadlinesExactWhenNotTracked(t *testing.T) {
	defer goleak.VerifyNone(t)
	t.Run("hijacked", func(t *testing.T) {
		tr, c, _ := keptPair(t)
		defer tr.Stop()
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		tr.ConnState(c, http.StateHijacked)
		if kept, onConn := readDeadline(c); kept || !onConn {
			t.Fatal("the kept deadline did not go to the socket at the hijack")
		}
		c.SetReadDeadline(time.Now().Add(time.Hour))
		if c.rd.at.Load() != 0 {
			t.Fatal("a hijacked connection's deadline was kept by the tracker")
		}
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read: %v, want a deadline error", err)
		}
	})
	t.Run("stopped", func(t *testing.T) {
		tr, c, _ := trackedPair(t, http.StateNew)
		tr.Stop()
		c.SetReadDeadline(time.Now().Add(time.Hour))
		if kept, onConn := readDeadline(c); kept || !onConn {
			t.Fatal("a deadline was kept by a stopped tracker")
		}
	})
}

// The reaper runs only while deadlines are kept.
func TestReaperEndsWithItsDeadlines(t *testing.T) {
	defer goleak.VerifyNone(t)
	tr, c, _ := keptPair(t)
	defer tr.Stop()
	c.SetWriteDeadline(time.Now().Add(time.Hour))
	if !tr.clock.reaping.Load() {
		t.Fatal("no reaper for a kept deadline")
	}
	c.SetWriteDeadline(time.Time{})
	deadline := time.Now().Add(5 * time.Second)
	for tr.clock.reaping.Load() && time.Now().Before(deadline) {
		time.Sleep(tr.clock.tick)
	}
	if tr.clock.reaping.Load() {
		t.Fatal("the reaper still runs with no deadline kept")
	}
	tr.reapers.Wait()
}
