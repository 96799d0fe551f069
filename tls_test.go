//go:build linux

package handoff_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/handoff-go/handoff/internal/testcert"
)

type tlsServer struct {
	*server
	addr      string
	ca        *testcert.CA
	certDir   string
	certFile  string
	keyFile   string
	firstLeaf *testcert.Leaf
}

func startTLSServer(t *testing.T, extra ...string) *tlsServer {
	t.Helper()
	ca, err := testcert.NewCA("e2e CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	leaf, err := ca.Valid("first", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := leaf.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	s := startServer(t, append([]string{"-tls", addr, "-cert", cert, "-key", key}, extra...)...)
	return &tlsServer{server: s, addr: addr, ca: ca, certDir: dir, certFile: cert, keyFile: key, firstLeaf: leaf}
}

func (s *tlsServer) roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.ca.Cert)
	return p
}

// serial makes one handshake and returns the serial of the leaf served.
func (s *tlsServer) serial(t *testing.T) *big.Int {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.addr,
		&tls.Config{RootCAs: s.roots(), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}

func (s *tlsServer) client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.roots()}, ForceAttemptHTTP2: true, DisableKeepAlives: true,
	}}
}

func TestCertificateReloadOnSIGUSR1(t *testing.T) {
	s := startTLSServer(t, "-cert-watch", "0") // SIGUSR1 alone reloads
	pid := s.current()
	if got := s.serial(t); got.Cmp(s.firstLeaf.Serial) != 0 {
		t.Fatalf("serving serial %v, want %v", got, s.firstLeaf.Serial)
	}
	resp, err := s.client().Get("https://" + s.addr + "/proto")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "HTTP/2.0" {
		t.Fatalf("negotiated %q, want HTTP/2.0", body)
	}

	second, err := s.ca.Valid("second", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := second.Write(s.certDir); err != nil {
		t.Fatal(err)
	}
	s.signal(pid, syscall.SIGUSR1)
	waitFor(t, 10*time.Second, "the new certificate", func() bool { return s.serial(t).Cmp(second.Serial) == 0 })
	if got, _ := fetch(s.api, "/pid"); got != strconv.Itoa(pid) {
		t.Fatalf("reload changed the process: /pid = %s, want %d", got, pid)
	}

	// A bad pair on disk: the key of another certificate.
	third, err := s.ca.Valid("third", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := testcert.WriteAtomic(s.certFile, third.CertPEM); err != nil {
		t.Fatal(err)
	}
	s.signal(pid, syscall.SIGUSR1)
	waitFor(t, 10*time.Second, "the failed reload", func() bool {
		return s.logCount(pid, "certificate reload failed; the current certificates stay") == 1
	})
	if got := s.serial(t); got.Cmp(second.Serial) != 0 {
		t.Fatalf("after a bad reload serial %v, want the good %v", got, second.Serial)
	}
	if n := s.logCount(pid, "certificate reloaded"); n != 1 {
		t.Fatalf("%d successful reloads logged, want 1", n)
	}
	// A restart rebuilds TLS from the same files: the child refuses the
	// bad pair and the parent keeps serving the good one.
	s.signal(pid, syscall.SIGHUP)
	waitFor(t, 20*time.Second, "the refused restart", func() bool {
		return s.logCount(pid, "restart failed; still serving") == 1
	})
	if got := s.serial(t); got.Cmp(second.Serial) != 0 {
		t.Fatalf("after the refused restart serial %v", got)
	}
	// Fixed files: reload and restart both work.
	testcert.WriteAtomic(s.keyFile, third.KeyPEM)
	next := s.restart()
	if got := s.serial(t); got.Cmp(third.Serial) != 0 {
		t.Fatalf("new process %d serves serial %v, want %v", next, got, third.Serial)
	}
	st := s.stats()
	ls := st["Listeners"].([]any)[2].(map[string]any)
	if ls["Name"] != "secure" || ls["CertExpiry"] == "0001-01-01T00:00:00Z" {
		t.Fatalf("stats of the TLS listener: %v", ls)
	}
}

// h2pipeliner is an HTTP/2 client on one connection that keeps depth
// streams open, opens a new one whenever one ends, never retries, and
// stops opening streams at the first GOAWAY.
type h2pipeliner struct {
	fr        *http2.Framer
	enc       *hpack.Encoder
	hbuf      bytes.Buffer
	next      uint32
	open      map[uint32]bool
	answered  int
	goaways   []uint32
	refused   int // streams above the last stream id of a GOAWAY
	resets    int
	non200    int
	statusDec *hpack.Decoder
	status    map[uint32]string
}

func runPipeliner(t *testing.T, addr string, roots *x509.CertPool, depth int, started chan<- struct{}) (*h2pipeliner, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return nil, err
	}
	p := &h2pipeliner{fr: http2.NewFramer(c, c), next: 1, open: map[uint32]bool{}, status: map[uint32]string{}}
	p.enc = hpack.NewEncoder(&p.hbuf)
	p.statusDec = hpack.NewDecoder(4096, nil)
	p.fr.WriteSettings()
	for range depth {
		if err := p.openStream(addr); err != nil {
			return p, err
		}
	}
	close(started)
	for {
		f, err := p.fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) && len(p.goaways) > 0 && len(p.open) == 0 {
				return p, nil // the server closed after its GOAWAY, all answered
			}
			return p, fmt.Errorf("read: %w (open streams %d)", err, len(p.open))
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				p.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				p.fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			p.goaways = append(p.goaways, f.LastStreamID)
			for id := range p.open {
				if id > f.LastStreamID {
					p.refused++
					delete(p.open, id)
				}
			}
		case *http2.HeadersFrame:
			fields, err := p.statusDec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				return p, err
			}
			for _, hf := range fields {
				if hf.Name == ":status" {
					p.status[f.StreamID] = hf.Value
				}
			}
			if f.StreamEnded() {
				p.done(f.StreamID)
			}
		case *http2.DataFrame:
			if len(f.Data()) > 0 {
				p.fr.WriteWindowUpdate(0, uint32(len(f.Data())))
			}
			if f.StreamEnded() {
				p.done(f.StreamID)
			}
		case *http2.RSTStreamFrame:
			p.resets++
			delete(p.open, f.StreamID)
		}
		if len(p.goaways) == 0 {
			for len(p.open) < depth {
				if err := p.openStream(addr); err != nil {
					return p, err
				}
			}
		}
	}
}

func (p *h2pipeliner) done(id uint32) {
	if !p.open[id] {
		return
	}
	delete(p.open, id)
	p.answered++
	if p.status[id] != "200" {
		p.non200++
	}
}

func (p *h2pipeliner) openStream(addr string) error {
	p.hbuf.Reset()
	for _, hf := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", addr}, {":path", "/"}} {
		p.enc.WriteField(hpack.HeaderField{Name: hf[0], Value: hf[1]})
	}
	id := p.next
	p.next += 2
	p.open[id] = true
	return p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.hbuf.Bytes(), EndStream: true, EndHeaders: true})
}

// Certificate files renamed over the old ones are served without a signal,
// and handshakes going on meanwhile all succeed.
func TestCertificateFilesFollowedWithoutASignal(t *testing.T) {
	s := startTLSServer(t, "-cert-watch", "50ms")
	pid := s.current()
	var done atomic.Bool
	var handshakes, failed atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.addr,
					&tls.Config{RootCAs: s.roots(), ServerName: "127.0.0.1"})
				handshakes.Add(1)
				if err != nil {
					failed.Add(1)
					continue
				}
				c.Close()
			}
		}()
	}
	second, err := s.ca.Valid("second", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := second.Write(s.certDir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the new certificate", func() bool { return s.serial(t).Cmp(second.Serial) == 0 })
	done.Store(true)
	wg.Wait()
	t.Logf("%d handshakes during the change, %d failed", handshakes.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d of %d handshakes failed", failed.Load(), handshakes.Load())
	}
	if s.logCount(pid, "certificate reloaded") == 0 {
		t.Fatal("no reload logged")
	}
}

// HTTP/2 clients that keep streams in flight through a restart see every
// stream they opened answered: the drain says GOAWAY without refusing or
// resetting a single stream.
func TestHTTP2AcrossRestarts(t *testing.T) {
	s := startTLSServer(t)
	for round := range 3 {
		const clients, depth = 4, 10
		results := make(chan *h2pipeliner, clients)
		errs := make(chan error, clients)
		started := make([]chan struct{}, clients)
		for i := range clients {
			started[i] = make(chan struct{})
			go func() {
				p, err := runPipeliner(t, s.addr, s.roots(), depth, started[i])
				if err != nil {
					errs <- err
					return
				}
				results <- p
			}()
		}
		// A client that fails before it has its streams open fails the
		// test at once instead of leaving it waiting.
		for _, c := range started {
			select {
			case <-c:
			case err := <-errs:
				t.Fatalf("round %d: a client failed before the restart: %v", round, err)
			case <-time.After(30 * time.Second):
				t.Fatalf("round %d: a client did not open its streams", round)
			}
		}
		s.restart()
		for range clients {
			select {
			case err := <-errs:
				t.Fatalf("round %d: %v", round, err)
			case p := <-results:
				if p.refused != 0 || p.resets != 0 || p.non200 != 0 || p.answered < depth {
					t.Fatalf("round %d: answered %d, refused %d, reset %d, non-200 %d, GOAWAYs %v",
						round, p.answered, p.refused, p.resets, p.non200, p.goaways)
				}
				if len(p.goaways) != 2 || p.goaways[0] != 1<<31-1 {
					t.Fatalf("round %d: GOAWAYs %v, want the two-step announcement", round, p.goaways)
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("round %d: client did not finish", round)
			}
		}
	}
}
