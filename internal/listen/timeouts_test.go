package listen

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestTakeTimeouts(t *testing.T) {
	tests := []struct {
		name                 string
		idle, header, read   time.Duration
		wantIdle, wantHeader time.Duration // kept by the tracker
		leftIdle, leftHeader time.Duration // left to the http.Server
	}{
		{"long ones move", 2 * time.Minute, 10 * time.Second, 0, 2 * time.Minute, 10 * time.Second, -1, -1},
		{"short ones stay", 4 * time.Second, time.Second, 0, 0, 0, 4 * time.Second, time.Second},
		{"ReadTimeout stands in for both", 0, 0, 30 * time.Second, 30 * time.Second, 30 * time.Second, -1, -1},
		{"none", 0, 0, 0, 0, 0, 0, 0},
		{"none asked for", -1, -1, 30 * time.Second, 0, 0, -1, -1},
		{"one of each", time.Minute, 100 * time.Millisecond, 0, time.Minute, 0, -1, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker(http.StateNew)
			hs := &http.Server{IdleTimeout: tt.idle, ReadHeaderTimeout: tt.header, ReadTimeout: tt.read}
			tr.TakeTimeouts(hs)
			if idle, header := tr.Timeouts(); idle != tt.wantIdle || header != tt.wantHeader {
				t.Errorf("tracker keeps idle %v, header %v; want %v, %v", idle, header, tt.wantIdle, tt.wantHeader)
			}
			if hs.IdleTimeout != tt.leftIdle || hs.ReadHeaderTimeout != tt.leftHeader {
				t.Errorf("server left with idle %v, header %v; want %v, %v",
					hs.IdleTimeout, hs.ReadHeaderTimeout, tt.leftIdle, tt.leftHeader)
			}
			if hs.ReadTimeout != tt.read {
				t.Errorf("ReadTimeout changed to %v", hs.ReadTimeout)
			}
		})
	}
}

// timeoutServer serves "ok" over HTTP/1 with the given timeouts, kept by
// a tracker on a test clock (kept from 200ms, a tick every 20ms). It
// returns the server's address.
func timeoutServer(t *testing.T, idle, header time.Duration) (*Tracker, string) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTracker(http.StateNew)
	tr.clock.after, tr.clock.tick = 200*time.Millisecond, 20*time.Millisecond
	hs := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		IdleTimeout:       idle,
		ReadHeaderTimeout: header,
		ConnState:         tr.ConnState,
	}
	tr.TakeTimeouts(hs)
	if hs.IdleTimeout != -1 || hs.ReadHeaderTimeout != -1 {
		t.Fatalf("the tracker did not take the timeouts: %v, %v", hs.IdleTimeout, hs.ReadHeaderTimeout)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		hs.Serve(tr.Listen(raw))
	}()
	t.Cleanup(func() {
		hs.Close()
		<-done
		tr.Stop()
	})
	return tr, raw.Addr().String()
}

// roundTrip sends one keep-alive request on c and reads its response.
func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}

// closedAfter waits for the server to close c, at most 5s, and returns
// how long after since that was.
func closedAfter(t *testing.T, c net.Conn, br *bufio.Reader, since time.Time) time.Duration {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(br)
	took := time.Since(since)
	if err != nil {
		t.Fatalf("the server did not close the connection: %v", err)
	}
	if len(rest) > 0 && string(rest[:min(len(rest), 12)]) != "HTTP/1.1 408" {
		t.Fatalf("got %q before the close", rest)
	}
	return took
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// An idle keep-alive connection is closed once the idle timeout has
// passed, not before, and a connection that sends its next request in
// time is not; the reaper stops with the last connection.
func TestIdleTimeoutKeptByTracker(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the server's cleanup
	const idle = 300 * time.Millisecond
	tr, addr := timeoutServer(t, idle, time.Minute)

	c, br := dial(t, addr)
	roundTrip(t, c, br)
	if took := closedAfter(t, c, br, time.Now()); took < idle || took > idle+time.Second {
		t.Fatalf("an idle connection was closed after %v, want %v and up to two ticks", took, idle)
	}

	// Eight requests 75ms apart: twice the idle timeout on one
	// connection that is never idle for long.
	c, br = dial(t, addr)
	for range 8 {
		roundTrip(t, c, br)
		time.Sleep(idle / 4) // the client's pace: what the test is about
	}
	roundTrip(t, c, br)
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for (tr.Len() > 0 || tr.clock.reaping.Load()) && time.Now().Before(deadline) {
		time.Sleep(tr.clock.tick)
	}
	if n := tr.Len(); n > 0 || tr.clock.reaping.Load() {
		t.Fatalf("%d connections tracked, reaper running %v; want none", n, tr.clock.reaping.Load())
	}
}

// The header timeout runs from a new connection's accept, and from the
// first bytes of each later request.
func TestHeaderTimeoutKeptByTracker(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the server's cleanup
	const header = 300 * time.Millisecond
	_, addr := timeoutServer(t, 3*time.Second, header)
	t.Run("silent new connection", func(t *testing.T) {
		start := time.Now()
		c, br := dial(t, addr)
		if took := closedAfter(t, c, br, start); took < header || took > header+time.Second {
			t.Fatalf("closed after %v, want %v and up to two ticks", took, header)
		}
	})
	t.Run("unfinished first request", func(t *testing.T) {
		start := time.Now()
		c, br := dial(t, addr)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
		if took := closedAfter(t, c, br, start); took < header || took > header+time.Second {
			t.Fatalf("closed after %v, want %v and up to two ticks", took, header)
		}
	})
	t.Run("unfinished next request", func(t *testing.T) {
		c, br := dial(t, addr)
		roundTrip(t, c, br)
		time.Sleep(header) // idle for a while: the header timeout starts later
		start := time.Now()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
		took := closedAfter(t, c, br, start)
		// Well before the idle timeout (3s): the header timeout cut it,
		// counted from the request's first bytes.
		if took < header || took > header+time.Second {
			t.Fatalf("closed %v after the request began, want %v and up to two ticks", took, header)
		}
	})
}

// The reaper fails the reads of a connection whose phase has expired, and
// of no other.
func TestExpiredPhase(t *testing.T) {
	defer goleak.VerifyNone(t)
	tr := NewTracker(http.StateNew)
	defer tr.Stop()
	tr.idle, tr.header = time.Minute, time.Minute
	now := int64(time.Since(epoch))
	due := (now-1)<<1 | phaseIdle

	dc := &deadlineConn{}
	c := &Conn{Conn: dc, t: tr}
	c.phase.Store(due)
	if left := c.expirePhase(now); left {
		t.Fatal("an expired phase is still kept")
	}
	if got := dc.calls(); len(got) != 1 || got[0].After(time.Now()) {
		t.Fatalf("socket deadlines %v, want one in the past", got)
	}
	if c.phase.Load() != 0 {
		t.Fatal("the phase stayed after it expired")
	}
	// Clearing the read deadline now reaches the socket.
	c.SetReadDeadline(time.Time{})
	if got := dc.calls(); len(got) != 2 || !got[1].IsZero() {
		t.Fatalf("socket deadlines %v, want the expiry cleared", got)
	}

	// The first bytes of the next request start the header timeout; a
	// request in progress has none.
	dc = &deadlineConn{}
	c = &Conn{Conn: dc, t: tr}
	c.phase.Store(due)
	c.wake(due)
	if p := c.phase.Load(); p == 0 || p&phaseIdle != 0 || p>>1 <= now {
		t.Fatalf("after the first bytes, phase %x, want a header deadline ahead", p)
	}
	c.setPhase(http.StateActive)
	if left := c.expirePhase(now + int64(time.Hour)); left || len(dc.calls()) != 0 {
		t.Fatalf("an active connection's reads were failed: %v", dc.calls())
	}
	// An idle phase expired by the reaper stays expired when the bytes
	// come after it.
	c.phase.Store(due)
	c.expirePhase(now)
	c.wake(due)
	if c.phase.Load() != 0 {
		t.Fatal("the first bytes after the expiry started a header timeout")
	}

	// A connection not yet due is left alone.
	dc = &deadlineConn{}
	c = &Conn{Conn: dc, t: tr}
	c.startPhase(time.Minute, true)
	if left := c.expirePhase(now); !left || len(dc.calls()) != 0 {
		t.Fatal("a phase not yet due was expired")
	}
	tr.MarkHTTP2(c)
	if c.phase.Load() != 0 {
		t.Fatal("HTTP/2 keeps its own timeouts, yet the phase stayed")
	}
}

// A kept read deadline expired by the reaper while the connection clears
// it leaves no deadline on the socket.
func TestClearingAnExpiredDeadline(t *testing.T) {
	defer goleak.VerifyNone(t)
	tr, c, client := keptPair(t)
	defer tr.Stop()
	c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want a deadline error", err)
	}
	c.SetReadDeadline(time.Time{})
	io.WriteString(client, "x")
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("read after clearing the expired deadline: %v", err)
	}
}
