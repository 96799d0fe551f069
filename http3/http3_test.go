package http3_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	qhttp3 "github.com/quic-go/quic-go/http3"
	"github.com/rs/zerolog"

	"github.com/handoff-go/handoff/acme"
	"github.com/handoff-go/handoff/http3"
	"github.com/handoff-go/handoff/internal/testcert"
	"github.com/handoff-go/handoff/internal/testpebble"
	"github.com/handoff-go/handoff/listeners"
	"github.com/handoff-go/handoff/server"
)

// certs writes a pair for 127.0.0.1 and returns it with its roots.
func certs(t testing.TB) (cert, key string, roots *x509.CertPool) {
	ca, cert, key := testcert.Files(t)
	return cert, key, ca.Pool()
}

var hello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })

// serve runs srv until the test ends; it fails the test unless srv
// serves.
func serve(t testing.TB, srv *server.Server) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() { srv.Shutdown(context.Background()); <-done })
	select {
	case <-srv.Serving():
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	}
}

// serveErr runs srv and returns Serve's error, which must come at once.
func serveErr(t *testing.T, srv *server.Server) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	select {
	case err := <-done:
		return err
	case <-srv.Serving():
		srv.Shutdown(context.Background())
		<-done
		t.Fatal("served")
	case <-time.After(10 * time.Second):
		t.Fatal("Serve neither failed nor served")
	}
	return nil
}

func quiet() server.Option { return server.WithLogger(zerolog.Nop()) }

func h3Client(roots *x509.CertPool) (*http.Client, *qhttp3.Transport) {
	tr := &qhttp3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, tr
}

// udpTakenTCPFree returns an address whose UDP port is bound (until the
// test ends) and whose TCP port was free a moment ago.
func udpTakenTCPFree(t *testing.T) string {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err == nil {
			t.Cleanup(func() { pc.Close() })
			return addr
		}
	}
	t.Fatal("no port found free for TCP and UDP both")
	return ""
}

func TestBadInput(t *testing.T) {
	cert, key, _ := certs(t)
	busy := udpTakenTCPFree(t)
	for _, tt := range []struct {
		name, addr string
		opts       []listeners.Option
		want       string
	}{
		{"no TLS", "127.0.0.1:0", []listeners.Option{http3.Enable()}, "HTTP/3 needs an HTTPS listener"},
		{"a TCP kind", "127.0.0.1:0", []listeners.Option{http3.Enable(), listeners.TLSFiles(cert, key), listeners.TCP(func(context.Context, net.Conn) {})}, "HTTP/3 needs an HTTPS listener"},
		{"a unix socket", "unix:" + t.TempDir() + "/s", []listeners.Option{http3.Enable(), listeners.TLSFiles(cert, key)}, "host:port"},
		{"UDP port in use", busy, []listeners.Option{http3.Enable(), listeners.TLSFiles(cert, key)}, `"api-quic"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := server.New(quiet())
			srv.Listen("api", tt.addr, tt.opts...)
			err := serveErr(t, srv)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Serve: %v; want an error with %s", err, tt.want)
			}
		})
	}
}

func TestServes(t *testing.T) {
	cert, key, roots := certs(t)
	srv := server.New(quiet())
	srv.Listen("api", "127.0.0.1:0", listeners.HTTP(hello), listeners.TLSFiles(cert, key), http3.Enable())
	serve(t, srv)
	c, tr := h3Client(roots)
	defer tr.Close()
	resp, err := c.Get("https://" + srv.Addr("api-quic").String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello" || resp.ProtoMajor != 3 {
		t.Fatalf("%q over %s", b, resp.Proto)
	}
}

// TestQUICStaysOutOfTheCore: programs that do not import this package do
// not link quic-go.
func TestQUICStaysOutOfTheCore(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../server", "../listeners", "../acme", "../metrics", "../hijack").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "quic-go") {
		t.Fatal("a core package depends on quic-go")
	}
}

// BenchmarkRequests: HTTP/3 GETs from 8 clients through handoff (the
// routed socket) and through a bare quic-go http3.Server on a UDP socket of
// its own, same handler, same machine.
func BenchmarkRequests(b *testing.B) {
	cert, key, roots := certs(b)
	b.Run("handoff", func(b *testing.B) {
		srv := server.New(quiet())
		srv.Listen("api", "127.0.0.1:0", listeners.HTTP(hello), listeners.TLSFiles(cert, key), http3.Enable())
		serve(b, srv)
		benchGets(b, srv.Addr("api-quic").String(), roots)
	})
	b.Run("bare", func(b *testing.B) {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			b.Fatal(err)
		}
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		hs := &qhttp3.Server{Handler: hello, TLSConfig: qhttp3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{pair}}), QUICConfig: &quic.Config{}}
		go hs.Serve(pc)
		defer func() { hs.Close(); pc.Close() }()
		benchGets(b, pc.LocalAddr().String(), roots)
	})
}

func benchGets(b *testing.B, addr string, roots *x509.CertPool) {
	clients := make([]*http.Client, 8)
	for i := range clients {
		c, tr := h3Client(roots)
		defer tr.Close()
		clients[i] = c
	}
	b.SetParallelism(4) // 8 goroutines on 2 cores
	next := make(chan int, len(clients)*4)
	for i := 0; i < cap(next); i++ {
		next <- i % len(clients)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := clients[<-next]
		for pb.Next() {
			resp, err := c.Get("https://" + addr + "/")
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// TestACMECertificates: HTTP/3 serves the certificate an ACME listener
// obtained.
func TestACMECertificates(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ca := testpebble.Start(t, testpebble.Config{TLSPort: port, HTTPPort: 1})
	pem, err := os.ReadFile(ca.RootsFile)
	if err != nil {
		t.Fatal(err)
	}
	caRoots := x509.NewCertPool()
	caRoots.AppendCertsFromPEM(pem)
	const domain = "h3.handoff.test"
	srv := server.New(quiet())
	srv.Listen("api", addr, listeners.HTTP(hello), http3.Enable(),
		acme.Domains(domain), acme.CA(ca.URL), acme.TrustRoots(caRoots), acme.StorageDir(t.TempDir()))
	serve(t, srv)
	tr := &qhttp3.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Issuing, ServerName: domain}}
	defer tr.Close()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get("https://" + srv.Addr("api-quic").String() + "/")
		if err == nil {
			resp.Body.Close()
			if resp.ProtoMajor != 3 || resp.TLS.PeerCertificates[0].DNSNames[0] != domain {
				t.Fatalf("%s, certificate for %v", resp.Proto, resp.TLS.PeerCertificates[0].DNSNames)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no HTTP/3 answer with the ACME certificate after 30s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
