package h2drain

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
)

// conn is an HTTP/2 connection as the inner server sees it: plaintext
// (above TLS when there is TLS), with the client preface replayed first
// when the listener's server has read it already (cleartext HTTP/2).
type conn struct {
	net.Conn // *tls.Conn, or the cleartext connection
	tls      *tls.ConnectionState
	replay   []byte // preface bytes to return before reading from Conn

	rc    Cursor // the client's frames; only the reading goroutine uses it
	acked atomic.Bool

	wmu     sync.Mutex
	wc      Cursor // the server's frames
	pending bool   // a soft GOAWAY waits for the next frame boundary
	werr    error  // the injection failed: the connection is unusable

	closeOnce sync.Once
	closed    chan struct{}
	closeErr  error
	release   func()

	softAt int64 // unix nanoseconds of the soft GOAWAY request; guarded by Set.mu
}

func newConn(nc net.Conn, state *tls.ConnectionState, replay []byte) *conn {
	c := &conn{Conn: nc, tls: state, replay: replay, closed: make(chan struct{})}
	c.rc.skip = len(Preface)
	return c
}

// Read reads the client's bytes and watches for the PING ACK.
func (c *conn) Read(p []byte) (int, error) {
	var n int
	var err error
	if len(c.replay) > 0 {
		n = copy(p, c.replay)
		c.replay = c.replay[n:]
	} else {
		n, err = c.Conn.Read(p)
	}
	if n > 0 && !c.rc.acked {
		c.rc.Feed(p[:n], false)
		if c.rc.acked {
			c.acked.Store(true)
		}
	}
	return n, err
}

// Write writes the server's bytes, with the soft GOAWAY put in at the
// first frame boundary once one is pending.
func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	written := 0
	for c.pending && written < len(p) {
		n := c.wc.Feed(p[written:], true)
		if _, err := c.Conn.Write(p[written : written+n]); err != nil {
			return written, err
		}
		written += n
		if c.wc.AtBoundary() {
			if err := c.injectLocked(); err != nil {
				return written, err
			}
		}
	}
	if written == len(p) {
		return written, nil
	}
	c.wc.Feed(p[written:], false)
	n, err := c.Conn.Write(p[written:])
	return written + n, err
}

// softGoAway sends the soft GOAWAY and PING as soon as the server is
// between frames. It may wait for a write in progress, so it runs on a
// goroutine of its own: a client that does not read can block it until
// the connection is closed, never the caller.
func (c *conn) softGoAway() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return
	}
	c.pending = true
	if c.wc.AtBoundary() {
		c.injectLocked()
	}
}

// injectLocked writes the soft GOAWAY with no deadline: a write that
// times out half-way leaves a TLS connection unusable, so the only bound
// is closing the connection (hammer time). A failed write is remembered
// and fails every later one, since the stream of frames is broken.
func (c *conn) injectLocked() error {
	c.pending = false
	if _, err := c.Conn.Write(softGoAway()); err != nil {
		c.werr = err
		return err
	}
	return nil
}

// Close closes the connection once and lets the listener's server, which
// waits for it, return.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		c.closeErr = c.Conn.Close()
		if c.release != nil {
			c.release()
		}
		close(c.closed)
	})
	return c.closeErr
}

// NetConn returns the connection below, so a tracker finds its own.
func (c *conn) NetConn() net.Conn { return c.Conn }
