package server

import (
	"net"
	"net/http"
	"testing"

	"github.com/handoff-go/handoff/internal/hijack"
	"github.com/handoff-go/handoff/internal/listen"
)

// oneConn is a listener that hands out the same connection forever.
type oneConn struct {
	net.Listener
	c net.Conn
}

func (l oneConn) Accept() (net.Conn, error) { return l.c, nil }

// BenchmarkConnBookkeeping measures what handoff itself spends on a
// connection that is accepted, hijacked (a websocket) and closed: the
// tracked wrapper, the tracker's and the registry's entries.
func BenchmarkConnBookkeeping(b *testing.B) {
	var reg hijack.Registry
	tr := listen.NewTracker(http.StateNew)
	tr.OnHijack = func(c *listen.Conn) func() { return reg.Add(c) }
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	ln := tr.Listen(oneConn{c: nopClose{c1}})
	b.ReportAllocs()
	for b.Loop() {
		c, _ := ln.Accept()
		tr.ConnState(c, http.StateActive)
		tr.ConnState(c, http.StateHijacked)
		c.Close()
	}
	if tr.Len() != 0 || reg.Len() != 0 {
		b.Fatalf("left %d tracked, %d hijacked", tr.Len(), reg.Len())
	}
}

type nopClose struct{ net.Conn }

func (nopClose) Close() error { return nil }
