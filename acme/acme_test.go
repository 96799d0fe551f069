package acme_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/handoff-go/handoff/acme"
	"github.com/handoff-go/handoff/internal/testlog"
	"github.com/handoff-go/handoff/internal/testpebble"
	"github.com/handoff-go/handoff/listeners"
	"github.com/handoff-go/handoff/server"
)

const domain = "api.handoff.test"

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// serve runs srv until the test ends and returns once it serves.
func serve(t *testing.T, srv *server.Server) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	select {
	case <-srv.Serving():
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not serving after 10s")
	}
}

// newServer is a server that logs to log (and to the test's output when
// it fails).
func newServer(t *testing.T, log *testlog.Buffer) *server.Server {
	var w io.Writer = log
	if testing.Verbose() {
		w = io.MultiWriter(log, os.Stderr)
	}
	return server.New(server.WithLogger(zerolog.New(w).With().Timestamp().Logger()),
		server.WithHammerTime(2*time.Second))
}

// handshake connects to addr asking for name and returns the certificate
// served, verified against the CA's roots.
func handshake(addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 2 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// awaitCert waits, up to limit, for addr to serve a valid certificate for
// name.
func awaitCert(t *testing.T, addr, name string, roots *x509.CertPool, limit time.Duration) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		leaf, err := handshake(addr, name, roots)
		if err == nil {
			return leaf
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no valid certificate for %s on %s after %v: %v", name, addr, limit, last)
	return nil
}

// fixture is a server with an ACME listener "https" and a plain HTTP
// listener "plain".
type fixture struct {
	srv  *server.Server
	log  *testlog.Buffer
	addr string // of "https"
}

// startACME serves, until the test ends, an ACME listener for domain on
// 127.0.0.1:port with certificates from ca, kept in storage.
func startACME(t *testing.T, ca *testpebble.CA, port int, storage string, extra ...listeners.Option) *fixture {
	t.Helper()
	f := &fixture{log: &testlog.Buffer{}, addr: "127.0.0.1:" + strconv.Itoa(port)}
	f.srv = newServer(t, f.log)
	opts := append(options(ca, t, storage), listeners.HTTP(okHandler()))
	f.srv.Listen("https", f.addr, append(opts, extra...)...).
		Listen("plain", "127.0.0.1:0", listeners.HTTP(okHandler()))
	serve(t, f.srv)
	return f
}

func options(ca *testpebble.CA, t *testing.T, storage string) []listeners.Option {
	pem, err := os.ReadFile(ca.RootsFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return []listeners.Option{
		acme.Domains(domain), acme.CA(ca.URL), acme.TrustRoots(pool),
		acme.StorageDir(storage), acme.Email("ops@handoff.test"),
	}
}

func TestTLSALPN01(t *testing.T) {
	port := freePort(t)
	ca := testpebble.Start(t, testpebble.Config{TLSPort: port, HTTPPort: freePort(t)})
	f := startACME(t, ca, port, t.TempDir())
	srv, addr := f.srv, f.addr

	leaf := awaitCert(t, addr, domain, ca.Issuing, 30*time.Second)
	if leaf.DNSNames[0] != domain {
		t.Fatalf("certificate for %v", leaf.DNSNames)
	}
	if n := ca.Issued(); n != 1 {
		t.Fatalf("%d certificates issued, want 1", n)
	}
	// Clients without SNI get the first domain's certificate.
	if leaf, err := handshake(addr, "", nil); err == nil || leaf != nil {
		var uerr x509.UnknownAuthorityError
		if !errors.As(err, &uerr) {
			t.Fatalf("handshake without server name: %v", err)
		}
	}
	// HTTP/2 is still negotiated.
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: domain, RootCAs: ca.Issuing, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Errorf("negotiated %q, want h2", p)
	}
	c.Close()

	st := srv.Stats().Listeners[0]
	if st.CertExpiry != leaf.NotAfter || len(st.Certs) != 1 || st.Certs[0].DNSNames[0] != domain {
		t.Fatalf("stats: expiry %v certs %+v; served %v", st.CertExpiry, st.Certs, leaf.NotAfter)
	}
	if !strings.Contains(f.log.String(), `"component":"acme"`) {
		t.Error("certmagic's log does not reach the server's log")
	}
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
}

// TestHTTP01AndRedirect: TLS-ALPN-01 cannot succeed (the CA validates it
// on a port nothing listens on), so the certificate comes through HTTP-01,
// answered by the redirecting listener.
func TestHTTP01AndRedirect(t *testing.T) {
	httpPort, tlsPort := freePort(t), freePort(t)
	ca := testpebble.Start(t, testpebble.Config{TLSPort: freePort(t), HTTPPort: httpPort})
	var log testlog.Buffer
	srv := newServer(t, &log)
	httpsAddr := "127.0.0.1:" + strconv.Itoa(tlsPort)
	httpAddr := "127.0.0.1:" + strconv.Itoa(httpPort)
	srv.Listen("https", httpsAddr, append(options(ca, t, t.TempDir()), listeners.HTTP(okHandler()))...).
		Listen("http", httpAddr, acme.Redirect("https"))
	serve(t, srv)

	awaitCert(t, httpsAddr, domain, ca.Issuing, 60*time.Second)
	if n := ca.Issued(); n != 1 {
		t.Fatalf("%d certificates issued, want 1", n)
	}
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get("http://" + httpAddr + "/path?q=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := "https://127.0.0.1:" + strconv.Itoa(tlsPort) + "/path?q=1"
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Fatalf("redirect: %s to %q, want 308 to %q", resp.Status, resp.Header.Get("Location"), want)
	}
}

// TestRenewalInPlace: certificates live 30 s and are renewed in the last
// third; a client that keeps one connection open and one that connects
// again and again see no error, and the new certificate is served without
// a restart.
func TestRenewalInPlace(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a renewal (about 25 s)")
	}
	port := freePort(t)
	ca := testpebble.Start(t, testpebble.Config{TLSPort: port, HTTPPort: freePort(t), Validity: 30 * time.Second})
	f := startACME(t, ca, port, t.TempDir(), acme.RenewCheck(500*time.Millisecond))
	srv, addr := f.srv, f.addr
	first := awaitCert(t, addr, domain, ca.Issuing, 30*time.Second)

	// Clients all along: requests on one connection kept open, and a new
	// handshake each time (verified as of its moment: the first
	// certificate is valid until it is replaced).
	load := ca.StartLoad(t, addr, domain, 20*time.Millisecond)

	var renewed *x509.Certificate
	deadline := time.Now().Add(40 * time.Second)
	for renewed == nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		if leaf, err := handshake(addr, domain, ca.Issuing); err == nil && leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
			renewed = leaf
		}
	}
	// The clients go on until their handshakes have met the new
	// certificate too.
	for deadline := time.Now().Add(10 * time.Second); renewed != nil && load.Certs() < 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	requests, handshakes, failed, certs := load.Stop()
	if renewed == nil {
		t.Fatalf("the certificate (expiring %v) was not renewed; log:\n%s", first.NotAfter, f.log.String())
	}
	if n := ca.Issued(); n != 2 {
		t.Errorf("%d certificates issued, want 2", n)
	}
	if failed != 0 || requests == 0 || handshakes == 0 || certs != 2 {
		t.Fatalf("%d failures in %d requests and %d handshakes across the renewal; %d certificates seen", failed, requests, handshakes, certs)
	}
	if got := srv.Stats().Listeners[0].CertExpiry; !got.Equal(renewed.NotAfter) {
		t.Errorf("stats say the certificate expires %v, the served one %v", got, renewed.NotAfter)
	}
	t.Logf("renewed %v before expiry; %d requests on one connection and %d handshakes meanwhile, 0 failed",
		time.Until(first.NotAfter).Round(time.Second), requests, handshakes)
}

// waitLog waits for a log line containing s and returns it.
func waitLog(t *testing.T, log *testlog.Buffer, s string, limit time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(log.String(), "\n") {
			if strings.Contains(line, s) {
				return line
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no log line with %q after %v; log:\n%s", s, limit, log.String())
	return ""
}

// get returns the status of a GET of url.
func get(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Status
}
