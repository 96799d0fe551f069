// Package h2drain drains HTTP/2 connections without refusing a stream.
//
// The standard library announces a graceful shutdown with one GOAWAY that
// names the last stream it has seen. Streams the client opened before that
// frame reached it are refused, and a client that does not retry them
// reports them as failed: about as many per connection as it had in flight.
// RFC 9113, section 6.8, describes the remedy used here. On a drain, every
// connection first gets a GOAWAY naming the highest possible stream, which
// tells the client to open no more, and a PING. Once the client has
// acknowledged the PING, every stream it opened has arrived; only then does
// the server send its own GOAWAY, which refuses none of them.
//
// Connections are served by an HTTP/2-only http.Server of the Set's own,
// fed through a channel listener by the TLSNextProto hooks of the
// listener's http.Server, so that the final GOAWAY comes from that inner
// server's Shutdown (which closes no HTTP/1 connection: it has none), and
// the soft GOAWAY is written between the inner server's frames by a
// connection wrapper that follows frame boundaries in both directions.
// Only supported standard-library APIs are used: http.Server.Protocols,
// TLSNextProto and Shutdown.
package h2drain

import "encoding/binary"

const (
	// Preface is what an HTTP/2 client sends before its first frame.
	Preface        = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	frameHeaderLen = 9
	framePing      = 0x6
	frameGoAway    = 0x7
	flagAck        = 0x1
)

// pingData marks the PING this package sends, so its ACK is recognised.
var pingData = [8]byte{'h', 'a', 'n', 'd', 'o', 'f', 'f', '!'}

// Cursor follows frame boundaries in one direction of a connection.
// It parses only frame headers (and the payload of a PING ACK); it never
// allocates and never fails: a peer that sends garbage only moves the
// boundaries it would see itself.
type Cursor struct {
	skip  int // bytes to pass before the first frame (the client preface)
	hdr   [frameHeaderLen]byte
	hn    int // header bytes seen
	left  int // payload bytes left in the current frame
	ping  bool
	pbuf  [8]byte
	pn    int
	acked bool // a PING ACK carrying pingData was seen
}

// AtBoundary reports whether the cursor stands between two frames.
func (fc *Cursor) AtBoundary() bool { return fc.skip == 0 && fc.hn == 0 && fc.left == 0 }

// Acked reports whether this package's PING has been acknowledged.
func (fc *Cursor) Acked() bool { return fc.acked }

// Feed advances over p. With stopAtBoundary it stops at the first frame
// boundary after at least one byte and returns how many bytes it consumed.
func (fc *Cursor) Feed(p []byte, stopAtBoundary bool) int {
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
				fc.pn += copy(fc.pbuf[fc.pn:], p[i:i+n])
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
		if stopAtBoundary && fc.AtBoundary() {
			return i
		}
	}
	return i
}

// softGoAway is a GOAWAY naming the highest stream id (no stream is
// refused; no new one may be opened) followed by this package's PING.
func softGoAway() []byte {
	b := make([]byte, 2*(frameHeaderLen+8))
	goaway := b[:frameHeaderLen+8]
	goaway[2], goaway[3] = 8, frameGoAway
	binary.BigEndian.PutUint32(goaway[9:], 1<<31-1) // last stream id; error code 0 follows
	ping := b[frameHeaderLen+8:]
	ping[2], ping[3] = 8, framePing
	copy(ping[9:], pingData[:])
	return b
}
