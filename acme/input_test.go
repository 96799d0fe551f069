package acme_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/handoff-go/handoff/acme"
	"github.com/handoff-go/handoff/internal/testlog"
	"github.com/handoff-go/handoff/internal/testpebble"
	"github.com/handoff-go/handoff/listeners"
	"github.com/handoff-go/handoff/server"
)

// TestBadOptions: what cannot work is an error from Serve, naming the
// problem, and nothing serves.
func TestBadOptions(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		opts []listeners.Option
		more func(*server.Server)
		want string
	}{
		{"no domain", []listeners.Option{acme.Domains()}, nil, "at least one name"},
		{"options but no domain", []listeners.Option{acme.Email("ops@example.com")}, nil, "no domain given"},
		{"space", []listeners.Option{acme.Domains("exa mple.com")}, nil, `character ' '`},
		{"wildcard", []listeners.Option{acme.Domains("*.example.com")}, nil, "DNS-01"},
		{"trailing dot", []listeners.Option{acme.Domains("example.com.")}, nil, "ends with a dot"},
		{"empty label", []listeners.Option{acme.Domains("example..com")}, nil, "empty or over-long label"},
		{"url", []listeners.Option{acme.Domains("https://example.com")}, nil, `character ':'`},
		{"hyphen", []listeners.Option{acme.Domains("-example.com")}, nil, "starts or ends with '-'"},
		{"http CA", []listeners.Option{acme.Domains("example.com"), acme.CA("http://ca.example.com/dir")}, nil, "https:// directory URL"},
		{"email", []listeners.Option{acme.Domains("example.com"), acme.Email("ops")}, nil, "not an email address"},
		{"renew check", []listeners.Option{acme.Domains("example.com"), acme.RenewCheck(0)}, nil, "positive interval"},
		{"with files", []listeners.Option{acme.Domains("example.com"), listeners.TLSFiles("a.crt", "a.key")}, nil, "exclusive"},
		{"tcp kind is fine, packet is not", []listeners.Option{acme.Domains("example.com"), listeners.Packet(nil)}, nil, "packet"},
		{"storage under a file", []listeners.Option{acme.Domains("example.com"), acme.StorageDir(filepath.Join(file, "acme"))}, nil, "storage directory"},
		{"redirect to nothing", []listeners.Option{listeners.HTTP(nil)}, func(s *server.Server) {
			s.Listen("http", "127.0.0.1:0", acme.Redirect("nowhere"))
		}, `redirects to "nowhere", which is not a declared HTTPS listener`},
		{"redirect with a handler", []listeners.Option{listeners.HTTP(nil)}, func(s *server.Server) {
			s.Listen("http", "127.0.0.1:0", acme.Redirect("api"), listeners.HTTP(okHandler()))
		}, "serves nothing else"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var log testlog.Buffer
			srv := newServer(t, &log)
			srv.Listen("api", "127.0.0.1:0", tt.opts...)
			if tt.more != nil {
				tt.more(srv)
			}
			done := make(chan error, 1)
			go func() { done <- srv.Serve() }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Serve: %v; want an error with %q", err, tt.want)
				}
			case <-srv.Serving():
				srv.Shutdown(t.Context())
				<-done
				t.Fatal("served")
			case <-time.After(10 * time.Second):
				t.Fatal("Serve neither failed nor served")
			}
		})
	}
}

// TestCARefuses: a CA that refuses the order (a name its policy forbids)
// is logged, and the server serves on.
func TestCARefuses(t *testing.T) {
	port := freePort(t)
	ca := testpebble.Start(t, testpebble.Config{TLSPort: port, HTTPPort: freePort(t), Blocked: []string{domain}})
	f := startACME(t, ca, port, t.TempDir())
	waitLog(t, f.log, "rejectedIdentifier", 20*time.Second)
	if n := ca.Issued(); n != 0 {
		t.Fatalf("%d certificates issued for a refused name", n)
	}
	if _, err := handshake(f.addr, domain, ca.Issuing); err == nil {
		t.Fatal("a certificate is served for a name the CA refused")
	}
	if st := get(t, "http://"+f.srv.Addr("plain").String()+"/"); st != "200 OK" {
		t.Fatalf("the other listener answers %s", st)
	}
}

// TestStoredCertificateOutlivesTheCA: a server that starts while its CA is
// unreachable serves the certificate it has in storage and obtains
// nothing; the failure to reach the CA does not stop it.
func TestStoredCertificateOutlivesTheCA(t *testing.T) {
	port := freePort(t)
	ca := testpebble.Start(t, testpebble.Config{TLSPort: port, HTTPPort: freePort(t)})
	storage := t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var log1 testlog.Buffer
	first := newServer(t, &log1)
	first.Listen("https", addr, append(options(ca, t, storage), listeners.HTTP(okHandler()))...)
	done := make(chan error, 1)
	go func() { done <- first.Serve() }()
	<-first.Serving()
	leaf := awaitCert(t, addr, domain, ca.Issuing, 30*time.Second)
	first.Shutdown(t.Context())
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	ca.Close()
	startACME(t, ca, port, storage)
	again, err := handshake(addr, domain, ca.Issuing)
	if err != nil {
		t.Fatalf("the stored certificate is not served at once: %v", err)
	}
	if again.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Fatalf("serial %x served, stored %x", again.SerialNumber, leaf.SerialNumber)
	}
	if n := ca.Orders(); n != 1 {
		t.Fatalf("%d orders, want the first one only", n)
	}
}

// TestUnreachableCA: with no certificate stored and no CA to be reached,
// the server serves (other listeners work), logs the failure and retries.
func TestUnreachableCA(t *testing.T) {
	port := freePort(t)
	ca := testpebble.Start(t, testpebble.Config{TLSPort: port, HTTPPort: freePort(t)})
	ca.Close()
	f := startACME(t, ca, port, t.TempDir())
	line := waitLog(t, f.log, "will retry", 30*time.Second)
	if !strings.Contains(line, `"level":"error"`) || !strings.Contains(line, "connection refused") {
		t.Errorf("the failure is not logged as an error that names it: %s", line)
	}
	if st := get(t, "http://"+f.srv.Addr("plain").String()+"/"); st != "200 OK" {
		t.Fatalf("the other listener answers %s", st)
	}
}
