//go:build linux

package handoff_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/testpebble"
)

const acmeDomain = "api.handoff.test"

// acmeHandshake returns the leaf served on addr for the test domain,
// verified against pool.
func acmeHandshake(addr string, pool *x509.CertPool) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, &tls.Config{ServerName: acmeDomain, RootCAs: pool})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

func awaitACMECert(t *testing.T, addr string, pool *x509.CertPool) *x509.Certificate {
	t.Helper()
	var leaf *x509.Certificate
	waitFor(t, 30*time.Second, "a certificate from the CA", func() bool {
		var err error
		leaf, err = acmeHandshake(addr, pool)
		return err == nil
	})
	return leaf
}

// TestACMEAcrossRestarts: the first process obtains a certificate; ten
// restarts later (the last four with the CA gone) the same certificate is
// served, nothing more was ordered, and clients connecting all along over
// TLS, on new connections and on one kept open, saw no error.
func TestACMEAcrossRestarts(t *testing.T) {
	addr := freeAddr(t)
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	ca := testpebble.Start(t, testpebble.Config{TLSPort: port, HTTPPort: 1})
	storage := t.TempDir()
	s := startServer(t, "-tls", addr, "-acme", acmeDomain, "-acme-ca", ca.URL,
		"-acme-roots", ca.RootsFile, "-acme-storage", storage)
	first := awaitACMECert(t, addr, ca.Issuing)

	load := ca.StartLoad(t, addr, acmeDomain, 2*time.Millisecond)
	for i := 0; i < 10; i++ {
		if i == 6 {
			ca.Close()
		}
		s.restart()
	}
	requests, handshakes, failed, certs := load.Stop()
	if n := ca.Orders(); n != 1 {
		t.Errorf("%d orders for 10 restarts, want the first one only", n)
	}
	if failed != 0 || requests == 0 || handshakes == 0 || certs != 1 {
		t.Fatalf("%d of %d requests and %d handshakes failed across 10 restarts; %d certificates seen", failed, requests, handshakes, certs)
	}
	if again, err := acmeHandshake(addr, ca.Issuing); err != nil || again.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("after the restarts: %v; the first certificate was %x", err, first.SerialNumber)
	}
	t.Logf("10 restarts: %d requests and %d handshakes, 0 failed, 1 order", requests, handshakes)
}

// TestACMESharedStorage: two servers (on two ports) share a storage
// directory; one certificate is issued, and both serve it. The CA
// validates on A's port only, and B starts first and takes the lock: A
// answers the challenge of B's order from the storage. (The CA's
// validation waits until A serves.)
func TestACMESharedStorage(t *testing.T) {
	addrA, addrB := freeAddr(t), freeAddr(t)
	_, portStr, _ := net.SplitHostPort(addrA)
	port, _ := strconv.Atoi(portStr)
	aServes := make(chan struct{})
	ca := testpebble.Start(t, testpebble.Config{TLSPort: port, HTTPPort: 1, Resolving: func() {
		select {
		case <-aServes:
		case <-time.After(20 * time.Second):
		}
	}})
	storage := filepath.Join(t.TempDir(), "shared")
	for _, addr := range []string{addrB, addrA} {
		startServer(t, "-tls", addr, "-acme", acmeDomain, "-acme-ca", ca.URL,
			"-acme-roots", ca.RootsFile, "-acme-storage", storage)
	}
	close(aServes)
	a := awaitACMECert(t, addrA, ca.Issuing)
	b := awaitACMECert(t, addrB, ca.Issuing)
	if a.SerialNumber.Cmp(b.SerialNumber) != 0 {
		t.Errorf("the servers serve different certificates: %x and %x", a.SerialNumber, b.SerialNumber)
	}
	if n := ca.Issued(); n != 1 {
		t.Fatalf("%d certificates issued for two servers sharing storage, want 1", n)
	}
}

// TestACMEExample runs examples/acme against the test CA: it obtains a
// certificate with TLS-ALPN-01, redirects plain HTTP, and serves the same
// certificate after a restart.
func TestACMEExample(t *testing.T) {
	httpsAddr, httpAddr := freeAddr(t), freeAddr(t)
	_, portStr, _ := net.SplitHostPort(httpsAddr)
	port, _ := strconv.Atoi(portStr)
	ca := testpebble.Start(t, testpebble.Config{TLSPort: port, HTTPPort: 1})
	dir := t.TempDir()
	s := &server{t: t, dir: dir, bin: filepath.Join(dir, "acme-example"), pidFile: filepath.Join(dir, "acme.pid"),
		logFile: filepath.Join(dir, "acme.log"), known: map[int]bool{}}
	build := exec.Command("go", "build", "-o", s.bin, "./examples/acme")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	logf, err := os.Create(s.logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	s.first = exec.Command(s.bin, "-domain", acmeDomain, "-ca", ca.URL, "-ca-roots", ca.RootsFile,
		"-storage", filepath.Join(dir, "storage"), "-https", httpsAddr, "-http", httpAddr, "-pidfile", s.pidFile)
	s.first.Stdout, s.first.Stderr = logf, logf
	if err := s.first.Start(); err != nil {
		t.Fatal(err)
	}
	s.firstPID = s.first.Process.Pid
	s.remember(s.firstPID)
	t.Cleanup(s.killAll)
	waitFor(t, 20*time.Second, "the example to serve", func() bool { return s.pidFromFile() == s.firstPID })

	first := awaitACMECert(t, httpsAddr, ca.Issuing)
	tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: acmeDomain, RootCAs: ca.Issuing}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	body := func(url string) string {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Status + " " + resp.Header.Get("Location") + " " + string(b)
	}
	want := fmt.Sprintf("200 OK  hello from pid %d, over HTTP/2.0, for %s\n", s.firstPID, acmeDomain)
	if got := body("https://" + httpsAddr + "/"); got != want {
		t.Fatalf("HTTPS: %q, want %q", got, want)
	}
	if got, want := body("http://"+httpAddr+"/x"), "308 Permanent Redirect https://127.0.0.1:"+portStr+"/x "; !strings.HasPrefix(got, want) {
		t.Fatalf("HTTP: %q, want %q…", got, want)
	}
	// (The CA validates HTTP-01 on a port nothing listens on, so an order
	// that tried it first failed: count orders from here.)
	orders := ca.Orders()
	now := s.restart()
	again, err := acmeHandshake(httpsAddr, ca.Issuing)
	if err != nil || again.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("after the restart: %v, serial %x (was %x)", err, again.SerialNumber, first.SerialNumber)
	}
	if got := body("https://" + httpsAddr + "/"); !strings.Contains(got, fmt.Sprintf("pid %d", now)) {
		t.Fatalf("after the restart: %q", got)
	}
	if n := ca.Orders() - orders; n != 0 || ca.Issued() != 1 {
		t.Fatalf("%d orders after the restart, %d certificates issued in all", n, ca.Issued())
	}
}
