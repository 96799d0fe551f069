package server

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// HTTP/2 graceful shutdown in two steps (RFC 9113, section 6.8).
//
// x/net/http2 announces a shutdown with one GOAWAY naming the last stream
// it has seen. Streams the client opened before receiving it are refused,
// and a client that does not retry them (h2load, for one) reports them as
// failed: about as many per connection as it had in flight. So handoff
// first sends its own GOAWAY naming the highest possible stream, which
// tells the client to open no more streams, together with a PING. Once the
// PING is acknowledged, every stream the client opened has arrived, and the
// server's own GOAWAY refuses none of them.
//
// The frames are written between the server's frames: h2conn tracks frame
// boundaries in both directions, on the bytes above TLS.

const (
	frameHeaderLen = 9
	framePing      = 0x6
	frameGoAway    = 0x7
	flagAck        = 0x1
	// softGoAwayWait bounds the wait for the PING's acknowledgement.
	softGoAwayWait = time.Second
)

var pingData = [8]byte{'h', 'a', 'n', 'd', 'o', 'f', 'f', '!'}

// frameCursor follows frame boundaries in one direction of a stream.
type frameCursor struct {
	skip  int // bytes to pass before the first frame (the client preface)
	hdr   [frameHeaderLen]byte
	hn    int // header bytes seen
	left  int // payload bytes left in the current frame
	ping  bool
	pbuf  [8]byte
	pn    int
	acked bool // a PING ACK with pingData was seen
}

func (fc *frameCursor) atBoundary() bool { return fc.skip == 0 && fc.hn == 0 && fc.left == 0 }

// feed advances over p. With stopAtBoundary it stops at the first frame
// boundary after at least one byte and returns how many bytes it consumed.
func (fc *frameCursor) feed(p []byte, stopAtBoundary bool) int {
	i := 0
	for i < len(p) {
		switch {
		case fc.skip > 0:
			n := min(fc.skip, len(p)-i)
			fc.skip -= n
			i += n
		case fc.left > 0:
			n := min(fc.left, len(p)-i)
			if fc.ping {
				c := copy(fc.pbuf[fc.pn:], p[i:i+n])
				fc.pn += c
			}
			fc.left -= n
			i += n
			if fc.left == 0 && fc.ping && fc.pn == 8 && fc.pbuf == pingData {
				fc.acked = true
			}
		default:
			n := min(frameHeaderLen-fc.hn, len(p)-i)
			copy(fc.hdr[fc.hn:], p[i:i+n])
			fc.hn += n
			i += n
			if fc.hn < frameHeaderLen {
				continue
			}
			fc.hn = 0
			fc.left = int(fc.hdr[0])<<16 | int(fc.hdr[1])<<8 | int(fc.hdr[2])
			fc.ping = fc.hdr[3] == framePing && fc.hdr[4]&flagAck != 0 && fc.left == 8
			fc.pn = 0
		}
		if stopAtBoundary && fc.atBoundary() {
			return i
		}
	}
	return i
}

// h2conn is the connection an HTTP/2 server conversation runs on.
type h2conn struct {
	*tls.Conn

	rmu sync.Mutex
	rc  frameCursor

	wmu     sync.Mutex
	wc      frameCursor
	pending bool // a soft GOAWAY waits for the next frame boundary

	// Guarded by h2set.mu.
	softAt   time.Time
	hardSent bool
}

func (c *h2conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.rmu.Lock()
	c.rc.feed(p[:n], false)
	c.rmu.Unlock()
	return n, err
}

func (c *h2conn) acked() bool {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return c.rc.acked
}

func (c *h2conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	written := 0
	for c.pending && written < len(p) {
		n := c.wc.feed(p[written:], true)
		if _, err := c.Conn.Write(p[written : written+n]); err != nil {
			return written, err
		}
		written += n
		if c.wc.atBoundary() {
			c.injectLocked()
		}
	}
	c.wc.feed(p[written:], false)
	n, err := c.Conn.Write(p[written:])
	return written + n, err
}

// softGoAway sends GOAWAY(last stream 2^31-1) and a PING, at once if the
// server is between frames, else as soon as it is.
func (c *h2conn) softGoAway() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.pending = true
	if c.wc.atBoundary() {
		c.injectLocked()
	}
}

func (c *h2conn) injectLocked() {
	c.pending = false
	var b [2 * (frameHeaderLen + 8)]byte
	goaway := b[:frameHeaderLen+8]
	goaway[2], goaway[3] = 8, frameGoAway
	binary.BigEndian.PutUint32(goaway[9:], 1<<31-1) // last stream id; error code 0
	ping := b[frameHeaderLen+8:]
	ping[2], ping[3] = 8, framePing
	copy(ping[9:], pingData[:])
	c.Conn.SetWriteDeadline(time.Now().Add(softGoAwayWait))
	c.Conn.Write(b[:])
	c.Conn.SetWriteDeadline(time.Time{})
}

// h2set is the HTTP/2 side of one listener: its connections and the
// server whose Shutdown sends the final GOAWAY.
type h2set struct {
	srv    *http2.Server
	holder *http.Server // ConfigureServer(holder, srv): holder.Shutdown sends GOAWAY

	mu    sync.Mutex
	conns map[*h2conn]struct{}
	hard  bool // holder.Shutdown called at least once
}

func newH2Set(idle time.Duration) (*h2set, error) {
	set := &h2set{srv: &http2.Server{IdleTimeout: idle}, holder: &http.Server{}, conns: map[*h2conn]struct{}{}}
	if err := http2.ConfigureServer(set.holder, set.srv); err != nil {
		return nil, err
	}
	return set, nil
}

// serveTLS serves one HTTP/2 connection negotiated by ALPN.
func (set *h2set) serveTLS(hs *http.Server, tc *tls.Conn, h http.Handler) {
	c := &h2conn{Conn: tc}
	c.rc.skip = len(http2.ClientPreface)
	set.mu.Lock()
	set.conns[c] = struct{}{}
	set.mu.Unlock()
	defer func() {
		set.mu.Lock()
		delete(set.conns, c)
		set.mu.Unlock()
	}()
	// net/http passes its per-connection base context through the handler.
	var ctx context.Context
	if bc, ok := h.(interface{ BaseContext() context.Context }); ok {
		ctx = bc.BaseContext()
	}
	set.srv.ServeConn(c, &http2.ServeConnOpts{Context: ctx, Handler: h, BaseConfig: hs})
}

// poll advances the drain of every HTTP/2 connection: a soft GOAWAY to
// each new one, then, once each has acknowledged (or softGoAwayWait has
// passed), the server's own GOAWAY to all of them.
func (set *h2set) poll(now time.Time) {
	set.mu.Lock()
	var soft []*h2conn
	ready, someNew := true, !set.hard
	for c := range set.conns {
		if c.softAt.IsZero() {
			c.softAt = now
			soft = append(soft, c)
			ready = false
			continue
		}
		if !c.hardSent {
			someNew = true
			if !c.acked() && now.Sub(c.softAt) < softGoAwayWait {
				ready = false
			}
		}
	}
	hard := ready && someNew
	if hard {
		set.hard = true
		for c := range set.conns {
			c.hardSent = true
		}
	}
	set.mu.Unlock()
	for _, c := range soft {
		c.softGoAway()
	}
	if hard {
		// Runs x/net's graceful shutdown on every connection (and h2c
		// ones, which have no soft step); returns at once.
		set.holder.Shutdown(context.Background())
	}
}

// Ensure h2conn still offers what ServeConn looks for.
var _ interface {
	net.Conn
	ConnectionState() tls.ConnectionState
} = (*h2conn)(nil)
