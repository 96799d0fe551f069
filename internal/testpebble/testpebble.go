// Package testpebble runs an ACME CA for tests: letsencrypt/pebble, in the
// test's process, on 127.0.0.1, with a DNS resolver of its own that sends
// every name to 127.0.0.1, so challenges are really validated against the
// server under test without any real DNS.
package testpebble

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
)

// Config says how the CA behaves.
type Config struct {
	// HTTPPort and TLSPort are where the CA validates HTTP-01 and
	// TLS-ALPN-01 challenges on 127.0.0.1.
	HTTPPort, TLSPort int
	// Validity is the lifetime of the certificates it issues (default 90
	// days).
	Validity time.Duration
	// Blocked names are refused by policy.
	Blocked []string
	// Resolving, when set, is called before each DNS answer (before each
	// validation): a test may hold validation until it is ready for it.
	Resolving func()
	// Log, when set, receives the CA's log.
	Log io.Writer
}

// CA is a running pebble.
type CA struct {
	// URL is the ACME directory.
	URL string
	// RootsFile is a PEM file with the root that the directory's HTTPS
	// certificate chains to (for the ACME client).
	RootsFile string
	// Issuing is the pool that the certificates it issues verify against.
	Issuing *x509.CertPool

	srv               *httptest.Server
	orders, finalized atomic.Int64
}

// Close stops the CA: it cannot be reached from then on.
func (c *CA) Close() { c.srv.Close() }

// Orders is the number of new orders the CA has received.
func (c *CA) Orders() int { return int(c.orders.Load()) }

// Issued is the number of orders that asked for a certificate (finalize).
func (c *CA) Issued() int { return int(c.finalized.Load()) }

// Start runs a CA until the test ends. It sets pebble's environment
// variables (no random sleeps, no rejected nonces, no reused
// authorizations), so its test cannot be parallel.
func Start(t testing.TB, cfg Config) *CA {
	t.Helper()
	for k, v := range map[string]string{
		"PEBBLE_VA_NOSLEEP":      "1",
		"PEBBLE_WFE_NONCEREJECT": "0",
		"PEBBLE_AUTHZREUSE":      "0",
	} {
		old, had := os.LookupEnv(k)
		os.Setenv(k, v)
		t.Cleanup(func() {
			if had {
				os.Setenv(k, old)
			} else {
				os.Unsetenv(k)
			}
		})
	}
	w := cfg.Log
	if w == nil {
		w = io.Discard
	}
	logger := log.New(w, "pebble ", log.Lmicroseconds)

	resolver := startDNS(t, cfg.Resolving)
	store := db.NewMemoryStore()
	for _, name := range cfg.Blocked {
		if err := store.AddBlockedDomain(name); err != nil {
			t.Fatal(err)
		}
	}
	validity := cfg.Validity
	if validity == 0 {
		validity = 90 * 24 * time.Hour
	}
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{
		"default": {Description: "test", ValidityPeriod: uint64(validity / time.Second)},
	})
	validator := va.New(logger, cfg.HTTPPort, cfg.TLSPort, false, resolver, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)

	c := &CA{Issuing: x509.NewCertPool()}
	c.Issuing.AddCert(authority.GetRootCert(0).Cert)
	api := front.Handler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			switch {
			case r.URL.Path == "/order-plz":
				c.orders.Add(1)
			case strings.HasPrefix(r.URL.Path, "/finalize-order/"):
				c.finalized.Add(1)
			}
		}
		api.ServeHTTP(w, r)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c.srv = srv
	c.URL = srv.URL + wfe.DirectoryPath

	c.RootsFile = t.TempDir() + "/pebble-https-root.pem"
	block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(c.RootsFile, block, 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// startDNS answers every A question with 127.0.0.1 and every other
// question with nothing, over TCP (as pebble asks), until the test ends.
func startDNS(t testing.TB, before func()) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		if before != nil {
			before()
		}
		m := new(dns.Msg)
		m.SetReply(q)
		for _, question := range q.Question {
			if question.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// Load is two clients of an HTTPS server with the CA's certificates: one
// sends requests on a kept-alive connection, the other makes a new
// handshake each time; both verify what they get against the CA's root.
type Load struct {
	t                           testing.TB
	stop                        chan struct{}
	wg                          sync.WaitGroup
	requests, handshakes, fails atomic.Int64
	mu                          sync.Mutex
	serials                     map[string]bool
}

// StartLoad starts the clients of addr (for the server name name), each
// pausing pause between two tries. Stop ends them.
func (c *CA) StartLoad(t testing.TB, addr, name string, pause time.Duration) *Load {
	l := &Load{t: t, stop: make(chan struct{}), serials: map[string]bool{}}
	tlsCfg := &tls.Config{ServerName: name, RootCAs: c.Issuing}
	tr := &http.Transport{TLSClientConfig: tlsCfg, MaxIdleConnsPerHost: 1}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	l.wg.Add(2)
	go l.loop(pause, &l.requests, func() error {
		resp, err := client.Get("https://" + addr + "/")
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return err
	})
	go l.loop(pause, &l.handshakes, func() error {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, tlsCfg)
		if err != nil {
			return err
		}
		defer conn.Close()
		l.mu.Lock()
		l.serials[conn.ConnectionState().PeerCertificates[0].SerialNumber.String()] = true
		l.mu.Unlock()
		return nil
	})
	t.Cleanup(func() { l.Stop(); tr.CloseIdleConnections() })
	return l
}

func (l *Load) loop(pause time.Duration, count *atomic.Int64, try func() error) {
	defer l.wg.Done()
	for i := 0; i < 1_000_000; i++ {
		select {
		case <-l.stop:
			return
		case <-time.After(pause):
		}
		count.Add(1)
		if err := try(); err != nil {
			l.fails.Add(1)
			l.t.Logf("TLS client: %v", err)
		}
	}
}

// Certs is the number of distinct certificates the handshakes saw so
// far.
func (l *Load) Certs() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.serials)
}

// Stop ends the clients (once) and reports what they did: requests,
// handshakes, failures of either, and the number of distinct
// certificates the handshakes saw.
func (l *Load) Stop() (requests, handshakes, failed int64, certs int) {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.requests.Load(), l.handshakes.Load(), l.fails.Load(), len(l.serials)
}
