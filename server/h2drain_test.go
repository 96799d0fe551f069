//go:build unix

package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/handoff-go/handoff/internal/listen"
	"github.com/handoff-go/handoff/listeners"
)

// h2Client opens a raw HTTP/2 connection over TLS with flow-control
// windows so large that only the socket limits what the server may send.
func h2Client(t *testing.T, addr string, roots *x509.CertPool, rcvbuf int) (*tls.Conn, *http2.Framer) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscallRawConn) error { return setRcvbuf(rc, rcvbuf) }
	}
	c, err := tls.DialWithDialer(&d, "tcp", addr, &tls.Config{RootCAs: roots, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	fr.WriteWindowUpdate(0, 1<<31-1-65535)
	return c, fr
}

func writeGet(t *testing.T, fr *http2.Framer, id uint32, path string) {
	t.Helper()
	var hb strings.Builder
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "127.0.0.1"}, {":path", path}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: []byte(hb.String()),
		EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
}

// An HTTP/2 client that stops reading while the server writes to it used
// to block the drain on a lock its writer held, so that not even hammer
// time ended it. Hammer time must bound the drain whatever a client does.
func TestHammerTimeBoundsAnHTTP2ClientThatStopsReading(t *testing.T) {
	ca, cert, key := certFiles(t)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	var written atomic.Int64
	big := make([]byte, 16<<10)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 4096; i++ { // 64 MiB at most
			if _, err := w.Write(big); err != nil {
				return
			}
			written.Add(int64(len(big)))
			w.(http.Flusher).Flush()
		}
	})
	s := newServer(newFakeOS(t).osx(), WithSignals(silentSource{}), WithLogger(testLogger(t)),
		WithHammerTime(time.Second))
	s.Listen("api", "127.0.0.1:0", listeners.HTTP(h), listeners.TLSFiles(cert, key),
		listeners.Configure(func(hs *http.Server) {
			hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
				if tc, ok := listen.Unwrap(c).NetConn().(*net.TCPConn); ok {
					tc.SetWriteBuffer(8 << 10)
				}
				return ctx
			}
		}))
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	<-s.Serving()

	_, fr := h2Client(t, s.Addr("api").String(), roots, 8<<10)
	writeGet(t, fr, 1, "/big")
	// Wait until the server's writes stall: the sockets are full.
	last, stable := int64(-1), time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if n := written.Load(); n != last {
			last, stable = n, time.Now()
		} else if n > 0 && time.Since(stable) > 300*time.Millisecond {
			break
		}
	}
	if n := written.Load(); n == 0 || n >= 4096*int64(len(big)) {
		t.Fatalf("the server wrote %d bytes; it should have stalled on the full socket", n)
	}

	start := time.Now()
	s.beginDrain("test")
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve had not returned 10s after a drain with a 1s hammer time")
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("drain took %v with a 1s hammer time", took)
	}
	if n := s.Stats().Hammered; n < 1 {
		t.Fatalf("Stats().Hammered = %d, want the stalled connection", n)
	}
}
