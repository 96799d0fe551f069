package server

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

func TestFrameCursorStopsAtBoundaries(t *testing.T) {
	stream := frames(0, 5, 20000, 3)
	want := []int{9, 9 + 14, 9 + 14 + 20009, 9 + 14 + 20009 + 12}
	// Feed in every chunk size: the boundaries found are the same.
	for chunk := 1; chunk <= 40; chunk++ {
		var fc frameCursor
		var got []int
		pos := 0
		for pos < len(stream) {
			end := min(pos+chunk, len(stream))
			for pos < end {
				n := fc.feed(stream[pos:end], true)
				pos += n
				if fc.atBoundary() {
					got = append(got, pos)
				}
			}
		}
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

func TestFrameCursorSeesPingAck(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&b, nil)
	fr.WritePing(false, pingData) // a PING, not an ACK
	fr.WritePing(true, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
	fr.WriteData(1, false, []byte("hello"))
	fr.WritePing(true, pingData)
	stream := b.Bytes()
	fc := frameCursor{skip: len(http2.ClientPreface)}
	ackAt := len(stream)
	for i := range stream {
		fc.feed(stream[i:i+1], false)
		if fc.acked && ackAt == len(stream) {
			ackAt = i + 1
		}
	}
	if !fc.acked || ackAt != len(stream) {
		t.Fatalf("acked %v at %d, want true at the end (%d)", fc.acked, ackAt, len(stream))
	}
}

// BenchmarkFrameCursor measures what tracking frame boundaries costs on
// the hot path of every HTTP/2 connection, per 16 KiB DATA frame fed in
// 4 KiB writes (the size x/net's buffered writer flushes).
func BenchmarkFrameCursor(b *testing.B) {
	stream := frames(16384)
	b.SetBytes(int64(len(stream)))
	var fc frameCursor
	for b.Loop() {
		for off := 0; off < len(stream); off += 4096 {
			fc.feed(stream[off:min(off+4096, len(stream))], false)
		}
	}
}
