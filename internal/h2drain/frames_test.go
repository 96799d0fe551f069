package h2drain

import (
	"bytes"
	"testing"

	"golang.org/x/net/http2"
)

// frames builds a byte stream of HTTP/2 frames with the given payload sizes.
func frames(sizes ...int) []byte {
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	for i, n := range sizes {
		fr.WriteData(uint32(2*i+1), false, make([]byte, n))
	}
	return b.Bytes()
}

// boundaries feeds stream in chunks of chunk bytes, stopping at each
// boundary, and returns the offsets of the boundaries found.
func boundaries(stream []byte, chunk int) []int {
	var fc Cursor
	var got []int
	pos := 0
	for pos < len(stream) {
		end := min(pos+chunk, len(stream))
		for pos < end {
			pos += fc.Feed(stream[pos:end], true)
			if fc.AtBoundary() {
				got = append(got, pos)
			}
		}
	}
	return got
}

func TestCursorStopsAtBoundaries(t *testing.T) {
	stream := frames(0, 5, 20000, 3)
	want := []int{9, 9 + 14, 9 + 14 + 20009, 9 + 14 + 20009 + 12}
	for chunk := 1; chunk <= 40; chunk++ {
		got := boundaries(stream, chunk)
		if len(got) != len(want) {
			t.Fatalf("chunk %d: boundaries %v, want %v", chunk, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("chunk %d: boundaries %v, want %v", chunk, got, want)
			}
		}
	}
}

func TestCursorSeesPingAck(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(Preface)
	fr := http2.NewFramer(&b, nil)
	fr.WritePing(false, pingData) // a PING, not an ACK
	fr.WritePing(true, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
	fr.WriteData(1, false, []byte("hello"))
	fr.WritePing(true, pingData)
	stream := b.Bytes()
	fc := Cursor{skip: len(Preface)}
	ackAt := len(stream)
	for i := range stream {
		fc.Feed(stream[i:i+1], false)
		if fc.Acked() && ackAt == len(stream) {
			ackAt = i + 1
		}
	}
	if !fc.Acked() || ackAt != len(stream) {
		t.Fatalf("acked %v at %d, want true at the end (%d)", fc.Acked(), ackAt, len(stream))
	}
}

func TestSoftGoAwayParses(t *testing.T) {
	fr := http2.NewFramer(nil, bytes.NewReader(softGoAway()))
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	ga, ok := f.(*http2.GoAwayFrame)
	if !ok || ga.LastStreamID != 1<<31-1 || ga.ErrCode != http2.ErrCodeNo {
		t.Fatalf("first frame %v, want GOAWAY(2^31-1, NO_ERROR)", f)
	}
	f, err = fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := f.(*http2.PingFrame); !ok || p.IsAck() || p.Data != pingData {
		t.Fatalf("second frame %v, want this package's PING", f)
	}
}

// FuzzCursor feeds client bytes (the cursor parses them on every HTTP/2
// connection) whole and in chunks: it must not panic, must consume every
// byte it is given, and must see the same boundaries and the same ACK
// however the bytes are cut.
func FuzzCursor(f *testing.F) {
	f.Add(frames(0, 5, 20000, 3), uint8(7))
	var b bytes.Buffer
	http2.NewFramer(&b, nil).WritePing(true, pingData)
	f.Add(b.Bytes(), uint8(1))
	f.Add([]byte{0xff, 0xff, 0xff, 6, 1, 0, 0, 0, 0}, uint8(3))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		var whole Cursor
		if n := whole.Feed(stream, false); n != len(stream) {
			t.Fatalf("consumed %d of %d bytes", n, len(stream))
		}
		var cut Cursor
		step := int(chunk)%64 + 1
		for pos := 0; pos < len(stream); {
			end := min(pos+step, len(stream))
			n := cut.Feed(stream[pos:end], true)
			if n <= 0 || n > end-pos {
				t.Fatalf("Feed returned %d for %d bytes", n, end-pos)
			}
			pos += n
		}
		if whole.AtBoundary() != cut.AtBoundary() || whole.Acked() != cut.Acked() || whole.left != cut.left {
			t.Fatalf("whole %+v, in chunks of %d %+v", whole, step, cut)
		}
	})
}

// BenchmarkCursor measures what following frame boundaries costs on the
// hot path of every HTTP/2 connection, per 16 KiB DATA frame fed in 4 KiB
// writes (the size the server's buffered writer flushes).
func BenchmarkCursor(b *testing.B) {
	stream := frames(16384)
	b.SetBytes(int64(len(stream)))
	var fc Cursor
	for b.Loop() {
		for off := 0; off < len(stream); off += 4096 {
			fc.Feed(stream[off:min(off+4096, len(stream))], false)
		}
	}
}
