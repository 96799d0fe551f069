package tlsreload

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/testcert"
)

func newCA(t testing.TB) *testcert.CA {
	t.Helper()
	ca, err := testcert.NewCA("handoff test CA")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func leaf(t testing.TB, ca *testcert.CA, cn string, names ...string) *testcert.Leaf {
	t.Helper()
	l, err := ca.Valid(cn, names...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func write(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadPairRejects(t *testing.T) {
	ca := newCA(t)
	good := leaf(t, ca, "good", "example.test")
	other := leaf(t, ca, "other", "example.test")
	expired, err := ca.Leaf("expired", nil, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	future, err := ca.Leaf("future", nil, time.Now().Add(time.Hour), time.Now().Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// Chain out of order: the CA before the leaf.
	leafOnly := good.CertPEM[:len(good.CertPEM)-len(ca.PEM)]
	reversed := append(append([]byte(nil), ca.PEM...), leafOnly...)

	tests := []struct {
		name      string
		cert, key []byte // nil: the file does not exist
		unreadble bool
		want      error
		wantText  string
	}{
		{name: "missing file", cert: nil, key: good.KeyPEM, want: fs.ErrNotExist},
		{name: "unreadable file", cert: good.CertPEM, key: good.KeyPEM, unreadble: true, wantText: "permission denied"},
		{name: "empty file", cert: []byte{}, key: good.KeyPEM, want: ErrNoPEM},
		{name: "garbage", cert: []byte("this is not PEM at all\n"), key: good.KeyPEM, want: ErrNoPEM},
		{name: "truncated cert", cert: good.CertPEM[:len(good.CertPEM)/2], key: good.KeyPEM, want: ErrTruncated},
		{name: "truncated key", cert: good.CertPEM, key: good.KeyPEM[:len(good.KeyPEM)-20], want: ErrTruncated},
		{name: "key does not match", cert: good.CertPEM, key: other.KeyPEM, want: ErrKeyMismatch},
		{name: "expired", cert: expired.CertPEM, key: expired.KeyPEM, want: ErrExpired},
		{name: "not yet valid", cert: future.CertPEM, key: future.KeyPEM, want: ErrNotYetValid},
		{name: "swapped", cert: good.KeyPEM, key: good.CertPEM, want: ErrSwapped},
		{name: "key file holds a certificate", cert: good.CertPEM, key: ca.PEM, want: ErrNoKey},
		{name: "CA before the leaf", cert: reversed, key: good.KeyPEM, want: ErrKeyMismatch},
		{name: "chain order", cert: append(append([]byte(nil), leafOnly...), other.CertPEM...), key: good.KeyPEM, want: ErrChainOrder},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
			if tt.cert != nil {
				write(t, certFile, tt.cert)
			}
			write(t, keyFile, tt.key)
			if tt.unreadble {
				if os.Geteuid() == 0 {
					// root reads anything: make the path a directory instead.
					os.Remove(certFile)
					os.Mkdir(certFile, 0o700)
					tt.wantText = "not a regular file"
				} else {
					os.Chmod(certFile, 0)
				}
			}
			_, err := LoadPair(certFile, keyFile, time.Now())
			if err == nil {
				t.Fatal("accepted")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if tt.wantText != "" && !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("error %v, want %q", err, tt.wantText)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Fatalf("error %q does not name the file", err)
			}
		})
	}
}

// Paths that are not regular files are refused at once: a FIFO used to
// hang the reload (and Serve, deaf to SIGTERM), /dev/zero to exhaust
// memory.
func TestLoadPairReadsOnlyBoundedRegularFiles(t *testing.T) {
	good := leaf(t, newCA(t), "good", "example.test")
	for _, tt := range []struct {
		name string
		make func(path string) error
		want error
	}{
		{"fifo", func(p string) error { return syscallMkfifo(p) }, ErrNotRegular},
		{"device", func(p string) error { return os.Symlink("/dev/zero", p) }, ErrNotRegular},
		{"directory", func(p string) error { return os.Mkdir(p, 0o700) }, ErrNotRegular},
		{"too large", func(p string) error {
			return os.WriteFile(p, append(append([]byte(nil), good.CertPEM...), make([]byte, MaxFileSize)...), 0o600)
		}, ErrTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
			write(t, keyFile, good.KeyPEM)
			if err := tt.make(certFile); err != nil {
				t.Skipf("cannot make a %s here: %v", tt.name, err)
			}
			done := make(chan error, 1)
			go func() { _, err := LoadPair(certFile, keyFile, time.Now()); done <- err }()
			select {
			case err := <-done:
				if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), certFile) {
					t.Fatalf("error %v, want %v naming the file", err, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("LoadPair did not return")
			}
		})
	}
}

func TestReloadKeepsTheOldPairOnError(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	first := leaf(t, ca, "first", "example.test")
	certFile, keyFile, err := first.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(nil, []Pair{{certFile, keyFile}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Info()[0].Subject; got != "CN=first" {
		t.Fatalf("subject %q", got)
	}
	// A half-written rotation: the new certificate, the old key.
	second := leaf(t, ca, "second", "example.test")
	testcert.WriteAtomic(certFile, second.CertPEM)
	if _, err := r.Reload(); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("Reload during rotation = %v, want ErrKeyMismatch", err)
	}
	if got := r.Info()[0].Subject; got != "CN=first" {
		t.Fatalf("after a failed reload the subject is %q, want the old one", got)
	}
	if got := serveSubject(t, r, "example.test"); got != "first" {
		t.Fatalf("handshake after a failed reload saw %q", got)
	}
	// The rotation completes: the next reload succeeds.
	testcert.WriteAtomic(keyFile, second.KeyPEM)
	info, err := r.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if info[0].Subject != "CN=second" || info[0].Serial == "" || info[0].NotAfter.IsZero() {
		t.Fatalf("info %+v", info[0])
	}
	if got := serveSubject(t, r, "example.test"); got != "second" {
		t.Fatalf("handshake after the reload saw %q", got)
	}
}

func TestSNI(t *testing.T) {
	ca := newCA(t)
	var pairs []Pair
	for _, name := range []string{"a.test", "b.test"} {
		dir := t.TempDir()
		c, k, err := leaf(t, ca, name, name).Write(dir)
		if err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, Pair{c, k})
	}
	r, err := New(nil, pairs, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a.test", "b.test"} {
		if got := serveSubject(t, r, name); got != name {
			t.Errorf("SNI %s served %q", name, got)
		}
	}
	// An unknown name gets the first pair.
	if got := serveSubject(t, r, "c.test"); got != "a.test" {
		t.Errorf("unknown SNI served %q, want the default a.test", got)
	}
	hello := &tls.ClientHelloInfo{ServerName: "b.test", SupportedVersions: []uint16{tls.VersionTLS13},
		SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256}}
	c, err := r.GetCertificate(hello)
	if err != nil || c.Leaf.Subject.CommonName != "b.test" {
		t.Fatalf("GetCertificate(b.test) = %v, %v", c.Leaf.Subject, err)
	}
}

func TestClientCAs(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	c, k, err := leaf(t, ca, "server", "example.test").Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "clients.pem")
	write(t, caFile, ca.PEM)
	r, err := New(nil, []Pair{{c, k}}, caFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := r.getConfigForClient(nil)
	if cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil {
		t.Fatal("client certificates not required")
	}
	write(t, caFile, []byte("garbage"))
	if _, err := r.Reload(); !errors.Is(err, ErrNoPEM) {
		t.Fatalf("Reload with a bad CA bundle = %v", err)
	}
}

// serveSubject makes one handshake against r and returns the common name
// of the certificate the server sent.
func serveSubject(t testing.TB, r *Reloader, serverName string) string {
	t.Helper()
	cs, cc := net.Pipe()
	defer cs.Close()
	defer cc.Close()
	srv := tls.Server(cs, r.Config())
	go srv.Handshake()
	cli := tls.Client(cc, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	if err := cli.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return cli.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// Hundreds of concurrent handshakes while the pair is swapped hundreds of
// times: no handshake fails, and each sees one whole pair (a certificate
// its key signed for, and the chain that goes with it).
func TestConcurrentHandshakesDuringSwaps(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	leaves := []*testcert.Leaf{leaf(t, ca, "one", "example.test"), leaf(t, ca, "two", "example.test")}
	certFile, keyFile, err := leaves[0].Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(nil, []Pair{{certFile, keyFile}}, "")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)

	swaps, clients, perClient := 60, 20, 5
	if testing.Short() {
		swaps, clients = 20, 8
	}
	var wg sync.WaitGroup
	var handshakes, failures atomic.Int64
	stop := make(chan struct{})
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perClient || !stopped(stop); i++ {
				cs, cc := net.Pipe()
				srv := tls.Server(cs, r.Config())
				go func() { srv.Handshake(); cs.Close() }()
				cli := tls.Client(cc, &tls.Config{ServerName: "example.test", RootCAs: roots})
				err := cli.Handshake() // verifies the chain and the signature of the key
				cc.Close()
				handshakes.Add(1)
				if err != nil {
					failures.Add(1)
					t.Errorf("handshake: %v", err)
					return
				}
				if i > 1000 {
					return
				}
			}
		}()
	}
	for i := range swaps {
		l := leaves[i%2]
		if _, _, err := l.Write(dir); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Reload(); err != nil {
			t.Fatalf("swap %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d handshakes during %d swaps, %d failed", handshakes.Load(), swaps, failures.Load())
	if handshakes.Load() < int64(clients*perClient) {
		t.Fatalf("only %d handshakes", handshakes.Load())
	}
}

func stopped(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// benchReloader serves one freshly made pair.
func benchReloader(b *testing.B) *Reloader {
	b.Helper()
	c, k, err := leaf(b, newCA(b), "bench", "example.test").Write(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	r, err := New(nil, []Pair{{c, k}}, "")
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkReload measures one reload of a key pair from disk.
func BenchmarkReload(b *testing.B) {
	r := benchReloader(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Reload(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetConfigForClient measures what every handshake pays.
func BenchmarkGetConfigForClient(b *testing.B) {
	r := benchReloader(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.getConfigForClient(nil)
		}
	})
}
