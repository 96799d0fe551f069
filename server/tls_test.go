//go:build unix

package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/testcert"
	"github.com/handoff-go/handoff/listeners"
)

func protoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) })
}

func serveListener(t *testing.T, opts ...listeners.Option) *Server {
	t.Helper()
	s := newServer(newFakeOS(t).osx(), WithSignals(silentSource{}), WithLogger(testLogger(t)))
	s.Listen("api", "127.0.0.1:0", opts...)
	served := serveInBackground(t, s)
	t.Cleanup(func() { s.Shutdown(context.Background()); <-served })
	return s
}

func TestH2C(t *testing.T) {
	s := serveListener(t, listeners.HTTP(protoHandler()), listeners.H2C())
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true) // prior knowledge
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Protocols: &h2c}}
	resp, err := c.Get("http://" + s.Addr("api").String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "HTTP/2.0" {
		t.Fatalf("h2c request served as %q", body)
	}
	// HTTP/1.1 still works on the same listener.
	if st := get(t, s); st != "200 OK" {
		t.Fatalf("HTTP/1.1 on an h2c listener: %s", st)
	}
}

// certFiles writes a pair for 127.0.0.1 signed by a new CA.
func certFiles(t *testing.T) (ca *testcert.CA, cert, key string) { return testcert.Files(t) }

func TestTLSDefaults(t *testing.T) {
	ca, cert, key := certFiles(t)
	s := serveListener(t, listeners.HTTP(protoHandler()), listeners.TLSFiles(cert, key))
	addr := s.Addr("api").String()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)

	old := &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10}
	if c, err := tls.Dial("tcp", addr, old); err == nil {
		c.Close()
		t.Fatal("a TLS 1.1 client completed a handshake")
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN chose %q, want h2", p)
	}
	c.Close()

	s.mu.Lock()
	hs := s.services[0].hs
	s.mu.Unlock()
	// The defaults are long enough for the tracker to keep them.
	if idle, header := s.services[0].tracker.Timeouts(); header != DefaultReadHeaderTimeout || idle != DefaultIdleTimeout {
		t.Fatalf("tracker's ReadHeaderTimeout %v, IdleTimeout %v; want the defaults", header, idle)
	}
	if hs.ReadHeaderTimeout >= 0 || hs.IdleTimeout >= 0 {
		t.Fatalf("http.Server's ReadHeaderTimeout %v, IdleTimeout %v; want none (negative)", hs.ReadHeaderTimeout, hs.IdleTimeout)
	}
	// A client that never finishes its headers is cut by ReadHeaderTimeout;
	// Configure shortens it for this check.
	s2 := serveListener(t, listeners.HTTP(protoHandler()),
		listeners.Configure(func(hs *http.Server) { hs.ReadHeaderTimeout = 100 * time.Millisecond }))
	slow, err := net.Dial("tcp", s2.Addr("api").String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	io.WriteString(slow, "GET / HTTP/1.1\r\nHost: x\r\n") // and never the blank line
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf, err := io.ReadAll(slow)
	if err != nil {
		t.Fatalf("the server kept a client that never finished its headers: %v", err)
	}
	if len(buf) != 0 && (len(buf) < 12 || string(buf[:12]) != "HTTP/1.1 408") {
		t.Fatalf("slowloris client got %q", buf)
	}
}

// TLS, and HTTP/2 by ALPN, work on a unix socket as on TCP.
func TestTLSOverUnixSocket(t *testing.T) {
	ca, cert, key := certFiles(t)
	path := filepath.Join(t.TempDir(), "s.sock")
	s := newServer(newFakeOS(t).osx(), WithSignals(silentSource{}), WithLogger(testLogger(t)))
	s.Listen("secure", "unix:"+path, listeners.HTTP(protoHandler()), listeners.TLSFiles(cert, key))
	served := serveInBackground(t, s)
	t.Cleanup(func() { s.Shutdown(context.Background()); <-served })
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	resp, err := c.Get("https://127.0.0.1/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "HTTP/2.0" {
		t.Fatalf("served as %q over the unix socket, want HTTP/2.0", body)
	}
}

// Every stream kind serves on a unix socket: a TCP handler and a server
// of the program's own, as well as HTTP (above).
func TestStreamKindsOverUnixSockets(t *testing.T) {
	dir := t.TempDir()
	echo := func(ctx context.Context, c net.Conn) { io.Copy(c, c) }
	var own net.Listener
	s := newServer(newFakeOS(t).osx(), WithSignals(silentSource{}), WithLogger(testLogger(t)), WithHammerTime(time.Second))
	s.Listen("tcp", "unix:"+filepath.Join(dir, "tcp.sock"), listeners.TCP(echo)).
		Listen("own", "unix:"+filepath.Join(dir, "own.sock"), listeners.Serve(func(ln net.Listener) error {
			own = ln
			for {
				c, err := ln.Accept()
				if err != nil {
					return nil
				}
				go echo(context.Background(), c)
			}
		}, func(context.Context) error { return own.Close() }))
	served := serveInBackground(t, s)
	for _, name := range []string{"tcp", "own"} {
		c, err := net.Dial("unix", filepath.Join(dir, name+".sock"))
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "ping\n")
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil || line != "ping\n" {
			t.Fatalf("%s over a unix socket: %q, %v", name, line, err)
		}
	}
	s.beginDrain("test")
	s.Hammer()
	if err := waitServed(t, served); err != nil {
		t.Fatal(err)
	}
}
