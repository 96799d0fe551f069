//go:build unix

package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/handoff-go/handoff/listeners"
)

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })

func unixClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: 64,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

func benchGET(b *testing.B, c *http.Client) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get("http://unix/")
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkUnixHTTP compares requests over a unix socket served by handoff
// with the same served by a bare net/http server.
func BenchmarkUnixHTTP(b *testing.B) {
	dir := b.TempDir()
	benchServer(b, "local", "unix:"+filepath.Join(dir, "handoff.sock"))
	handoff := unixClient(filepath.Join(dir, "handoff.sock"))
	ln, err := net.Listen("unix", filepath.Join(dir, "bare.sock"))
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: okHandler}
	go hs.Serve(ln)
	defer hs.Close()
	bare := unixClient(filepath.Join(dir, "bare.sock"))
	b.Run("handoff", func(b *testing.B) { benchGET(b, handoff) })
	b.Run("net/http", func(b *testing.B) { benchGET(b, bare) })
}

// benchServer serves one listener for a benchmark, quietly, and stops it
// (at once: a hammer) when the benchmark is over.
func benchServer(b *testing.B, name, addr string, opts ...listeners.Option) *Server {
	b.Helper()
	s := newServer(newFakeOS(nil).osx(), WithSignals(silentSource{}), WithHandler(okHandler),
		WithLogger(zerolog.Nop()))
	s.Listen(name, addr, opts...)
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	select {
	case <-s.Serving():
	case err := <-done:
		b.Fatal(err)
	}
	b.Cleanup(func() {
		s.beginDrain("benchmark over")
		s.Hammer()
		<-done
	})
	return s
}

func udpEchoLoop(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo(buf[:n], addr)
	}
}

func benchDatagrams(b *testing.B, addr string) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("udp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		for pb.Next() {
			c.Write([]byte("ping"))
			if _, err := c.Read(buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPacket compares a UDP echo served through listeners.Packet with
// a bare ReadFrom loop on a socket of its own.
func BenchmarkPacket(b *testing.B) {
	s := benchServer(b, "dns", "udp:127.0.0.1:0", listeners.Packet(func(ctx context.Context, pc net.PacketConn) {
		udpEchoLoop(pc) // returns when the drain's read deadline stops it
	}))
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close()
	go udpEchoLoop(pc)
	b.Run("handoff", func(b *testing.B) { benchDatagrams(b, s.Addr("dns").String()) })
	b.Run("bare", func(b *testing.B) { benchDatagrams(b, pc.LocalAddr().String()) })
}
