//go:build unix

package tlsreload

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/testcert"
)

// served writes l into dir and returns a Reloader serving it.
func served(t *testing.T, dir string, l *testcert.Leaf) *Reloader {
	t.Helper()
	certFile, keyFile, err := l.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(nil, []Pair{{certFile, keyFile}}, "")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A way of watching: by the file system's events (polling only once an
// hour, so that a change seen in time was seen by an event), or by
// polling alone.
type watchMode struct {
	name     string
	interval time.Duration
	events   bool
}

var (
	byEvents  = watchMode{"events", time.Hour, true}
	byPolling = watchMode{"polling", 20 * time.Millisecond, false}
)

// modes are the ways of watching this platform has.
func modes() []watchMode {
	if runtime.GOOS == "linux" {
		return []watchMode{byEvents, byPolling}
	}
	return []watchMode{byPolling}
}

// watchingBy runs r.Watch and returns a channel of its reports.
func watchingBy(t *testing.T, r *Reloader, m watchMode) <-chan error {
	t.Helper()
	// The test changes the files once the watch has begun, so that in
	// events mode only an event can tell.
	begun := make(chan struct{})
	newNotifier = func(files []string) (<-chan struct{}, func()) {
		defer close(begun)
		if !m.events {
			return nil, func() {}
		}
		wake, stop := notifier(files)
		<-wake // the look at the start, which would see a change without an event
		return wake, stop
	}
	t.Cleanup(func() { newNotifier = notifier })
	reports := make(chan error, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Watch(ctx, m.interval, func(_ []Info, err error) { reports <- err })
	}()
	<-begun
	t.Cleanup(func() { cancel(); <-done })
	return reports
}

func nextReport(t *testing.T, reports <-chan error) error {
	t.Helper()
	select {
	case err := <-reports:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no reload within 10s")
		return nil
	}
}

// handshakes keeps TLS handshakes going against r until the test ends and
// counts the failures.
func handshakes(t *testing.T, r *Reloader, roots *x509.CertPool) *atomic.Int64 {
	t.Helper()
	var failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				cs, cc := net.Pipe()
				go func() { tls.Server(cs, r.Config()).Handshake(); cs.Close() }()
				err := tls.Client(cc, &tls.Config{ServerName: "example.test", RootCAs: roots}).Handshake()
				cc.Close()
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	t.Cleanup(func() { close(stop); wg.Wait() })
	return &failed
}

// Files renamed over the old ones are picked up without a signal, while
// handshakes go on without a failure.
func TestWatchRename(t *testing.T) {
	for _, m := range modes() {
		t.Run(m.name, func(t *testing.T) { testWatchRename(t, m) })
	}
}

func testWatchRename(t *testing.T, m watchMode) {
	ca := newCA(t)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	dir := t.TempDir()
	one, two := leaf(t, ca, "one", "example.test"), leaf(t, ca, "two", "example.test")
	r := served(t, dir, one)
	failed := handshakes(t, r, roots)
	reports := watchingBy(t, r, m)
	if _, _, err := two.Write(dir); err != nil { // rename over both files
		t.Fatal(err)
	}
	reloadedTo(t, r, reports, two, failed)
}

// reloadedTo waits for a reload and checks that it serves want and that
// no handshake failed meanwhile. A reload that read the new certificate
// before its key was written (polling on a loaded machine can look twice
// in between) fails with ErrKeyMismatch, keeps the set in use, and is
// tried again once the key changes: up to two such reports are allowed
// before the one that must succeed.
func reloadedTo(t *testing.T, r *Reloader, reports <-chan error, want *testcert.Leaf, failed *atomic.Int64) {
	t.Helper()
	err := nextReport(t, reports)
	for i := 0; i < 2 && errors.Is(err, ErrKeyMismatch); i++ {
		t.Logf("a reload between the two writes: %v", err)
		err = nextReport(t, reports)
	}
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Info()[0].Serial; got != serialHex(want.Serial) {
		t.Fatalf("serving %s after the change, want %s", got, serialHex(want.Serial))
	}
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d handshakes failed during the change", n)
	}
}

// A Kubernetes secret volume: the files are symlinks through ..data, a
// symlink to a timestamped directory that an update replaces atomically.
func TestWatchKubernetesSecretSwap(t *testing.T) {
	for _, m := range modes() {
		t.Run(m.name, func(t *testing.T) { testWatchKubernetesSecretSwap(t, m) })
	}
}

func testWatchKubernetesSecretSwap(t *testing.T, m watchMode) {
	ca := newCA(t)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	dir := t.TempDir()
	version := func(name string, l *testcert.Leaf) {
		v := filepath.Join(dir, name)
		if err := os.Mkdir(v, 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(v, "tls.crt"), l.CertPEM)
		write(t, filepath.Join(v, "tls.key"), l.KeyPEM)
		if err := os.Symlink(name, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	one, two := leaf(t, ca, "one", "example.test"), leaf(t, ca, "two", "example.test")
	version("..2026_11_30_01", one)
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := New(nil, []Pair{{filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")}}, "")
	if err != nil {
		t.Fatal(err)
	}
	failed := handshakes(t, r, roots)
	reports := watchingBy(t, r, m)
	version("..2026_11_30_02", two)
	reloadedTo(t, r, reports, two, failed)
}

// A certificate written well before its key fails to load (the old pair
// goes on serving) and is tried again once the key is written.
func TestWatchCertificateBeforeKey(t *testing.T) {
	for _, m := range modes() {
		t.Run(m.name, func(t *testing.T) { testWatchCertificateBeforeKey(t, m) })
	}
}

func testWatchCertificateBeforeKey(t *testing.T, m watchMode) {
	ca := newCA(t)
	dir := t.TempDir()
	one, two := leaf(t, ca, "one", "example.test"), leaf(t, ca, "two", "example.test")
	r := served(t, dir, one)
	certFile, keyFile := r.pairs[0].CertFile, r.pairs[0].KeyFile
	reports := watchingBy(t, r, m)
	if err := testcert.WriteAtomic(certFile, two.CertPEM); err != nil {
		t.Fatal(err)
	}
	if err := nextReport(t, reports); err == nil {
		t.Fatal("a certificate without its key was loaded")
	}
	if got := r.Info()[0].Serial; got != serialHex(one.Serial) {
		t.Fatalf("serving %s after a failed reload, want the old %s", got, serialHex(one.Serial))
	}
	if err := testcert.WriteAtomic(keyFile, two.KeyPEM); err != nil {
		t.Fatal(err)
	}
	if err := nextReport(t, reports); err != nil {
		t.Fatal(err)
	}
	if got := r.Info()[0].Serial; got != serialHex(two.Serial) {
		t.Fatalf("serving %s once the key came, want %s", got, serialHex(two.Serial))
	}
}

func TestExpiring(t *testing.T) {
	ca := newCA(t)
	l, err := ca.Leaf("soon", []string{"example.test"}, time.Now().Add(-time.Hour), time.Now().Add(10*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c, k, err := l.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(nil, []Pair{{c, k}}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		at   time.Time
		want time.Duration
	}{
		{time.Now().Add(-30 * 24 * time.Hour), 0},
		{time.Now(), 30 * 24 * time.Hour},
		{time.Now().Add(5 * 24 * time.Hour), 7 * 24 * time.Hour},
	} {
		if got := Expiring(r.Info()[0].NotAfter, tt.at); got != tt.want {
			t.Errorf("Expiring(%v) = %v, want %v", tt.at, got, tt.want)
		}
	}
}
