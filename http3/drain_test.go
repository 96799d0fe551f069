package http3

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	qhttp3 "github.com/quic-go/quic-go/http3"
	"github.com/rs/zerolog"

	"github.com/handoff-go/handoff/internal/listen"
	"github.com/handoff-go/handoff/internal/logx"
	"github.com/handoff-go/handoff/internal/testcert"
	"github.com/handoff-go/handoff/internal/testlog"
)

// holdingRelay passes datagrams between one client and a server, except
// that it holds every datagram of the client's after its first until
// release is called.
type holdingRelay struct {
	front  *net.UDPConn
	server *net.UDPAddr

	mu       sync.Mutex
	client   net.Addr
	sent     int
	held     [][]byte
	released bool
}

func newHoldingRelay(t *testing.T, server *net.UDPAddr) *holdingRelay {
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &holdingRelay{front: front, server: server}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := front.ReadFrom(buf)
			if err != nil {
				return
			}
			b := append([]byte(nil), buf[:n]...)
			if from.String() == server.String() {
				r.mu.Lock()
				to := r.client
				r.mu.Unlock()
				front.WriteTo(b, to)
				continue
			}
			r.mu.Lock()
			r.client = from
			r.sent++
			if r.sent > 1 && !r.released {
				r.held = append(r.held, b)
				r.mu.Unlock()
				continue
			}
			r.mu.Unlock()
			front.WriteTo(b, server)
		}
	}()
	t.Cleanup(func() { front.Close(); <-done })
	return r
}

// release sends what was held and stops holding.
func (r *holdingRelay) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.released = true
	for _, b := range r.held {
		r.front.WriteTo(b, r.server)
	}
}

// clientTransport is a QUIC transport for clients on a loopback socket of
// its own, closed when the test ends.
func clientTransport(t *testing.T) *quic.Transport {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: c}
	t.Cleanup(func() { tr.Close(); c.Close() })
	return tr
}

// listenEarly listens for QUIC connections on pc, as a server with
// certificate pair whose transport begins each with connContext; the
// transport is closed when the test ends.
func listenEarly(t *testing.T, pc net.PacketConn, pair tls.Certificate,
	connContext func(context.Context, *quic.ClientInfo) (context.Context, error)) *quic.EarlyListener {
	t.Helper()
	str := &quic.Transport{Conn: pc, ConnContext: connContext}
	t.Cleanup(func() { str.Close() })
	ln, err := str.ListenEarly(qhttp3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{pair}}), &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// drainFixture returns a CA and a certificate it issued for 127.0.0.1, a
// UDP socket (closed when the test ends) and a family secret.
func drainFixture(t *testing.T) (*testcert.CA, tls.Certificate, *net.UDPConn, []byte) {
	t.Helper()
	ca, certFile, keyFile := testcert.Files(t)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	family := make([]byte, 32)
	rand.Read(family)
	return ca, pair, pc, family
}

// TestDrainWaitsForHandshakes: a connection whose handshake is under way
// when its process begins to drain (the client's second Initial is held
// back until then) is served, or told to go elsewhere in a way clients
// retry, never refused; a new process took over the socket meanwhile.
func TestDrainWaitsForHandshakes(t *testing.T) {
	ca, pair, pc, family := drainFixture(t)
	f, err := pc.File()
	if err != nil {
		t.Fatal(err)
	}
	pc2, err := net.FilePacketConn(f) // the new process's descriptor
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var out testlog.Buffer
	log := logx.Zerolog(zerolog.New(zerolog.MultiLevelWriter(zerolog.NewTestWriter(t), &out)))
	env := func(gen int) listen.CompanionEnv {
		return listen.CompanionEnv{
			Log: log.WithInt("generation", gen), Generation: gen, Family: family,
			TLS: &tls.Config{Certificates: []tls.Certificate{pair}},
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "generation "+string(rune('0'+gen)))
			}),
		}
	}

	begun := make(chan struct{}, 16)
	settling := make(chan struct{}, 1)
	testHookBegun = func() { begun <- struct{}{} }
	testHookSettling = func(open int, marked bool) {
		if open == 1 && marked {
			select {
			case settling <- struct{}{}:
			default:
			}
		}
	}
	defer func() { testHookBegun, testHookSettling = nil, nil }()

	serving := func(ctx context.Context, pc net.PacketConn, gen int) chan struct{} {
		done := make(chan struct{})
		go func() { defer close(done); serve(ctx, pc, env(gen)) }()
		return done
	}
	ctx1, drain1 := context.WithCancel(context.Background())
	done1 := serving(ctx1, pc, 1)
	var done2 chan struct{}
	ctx2, drain2 := context.WithCancel(context.Background())
	defer func() {
		drain1()
		drain2()
		pc.Close() // hammer time for both, if they have not ended
		pc2.Close()
		for _, done := range []chan struct{}{done1, done2} {
			if done == nil {
				continue
			}
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("a process's HTTP/3 did not end")
			}
		}
	}()

	relay := newHoldingRelay(t, pc.LocalAddr().(*net.UDPAddr))
	qtr := clientTransport(t)
	tr := &qhttp3.Transport{
		// A post-quantum key share makes the ClientHello span two
		// Initial packets: the server begins the connection on the
		// first and waits for the second.
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", CurvePreferences: []tls.CurveID{tls.X25519MLKEM768}},
		Dial: func(ctx context.Context, _ string, tlsConf *tls.Config, conf *quic.Config) (*quic.Conn, error) {
			return qtr.DialEarly(ctx, relay.front.LocalAddr(), tlsConf, conf)
		},
	}
	defer tr.Close()
	c := &http.Client{Transport: tr, Timeout: 20 * time.Second}

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := c.Get("https://127.0.0.1/")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()

	select {
	case <-begun: // the first process began the connection on its first Initial
	case r := <-got:
		t.Fatalf("the request ended before its handshake could be held: %q, %v", r.body, r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("the server began no connection")
	}
	done2 = serving(ctx2, pc2, 2)
	drain1()
	select {
	case <-settling: // the drain waits for that connection, still in its handshake
	case <-done1:
		t.Fatal("the first process's HTTP/3 ended with a connection in its handshake")
	case <-time.After(10 * time.Second):
		t.Fatal("the drain did not wait for the connection in its handshake")
	}
	relay.release() // (the second Initial may not have reached the relay yet)
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("the request whose handshake spanned the drain: %v", r.err)
		}
		if r.body != "generation 1" && r.body != "generation 2" {
			t.Fatalf("answered %q", r.body)
		}
		t.Logf("answered by %s", r.body)
	case <-time.After(20 * time.Second):
		t.Fatal("no answer")
	}
	// The first process served the connection with a server of its own
	// (late_conns 1), or, when the second Initial went to the new process
	// (the router sends a draining process's new connections there), the
	// client's retransmission completed the handshake there and the first
	// process's half ends with quic-go's handshake timeout (5 s).
	select {
	case <-done1:
	case <-time.After(10 * time.Second):
		t.Fatal("the first process's HTTP/3 did not end")
	}
	if s := out.String(); !strings.Contains(s, `{"level":"info","generation":1,"late_conns":`) {
		t.Fatalf("log:\n%s", s)
	}
}

// TestDrainSeesMarker: quic-go takes the drain's marker for a new
// connection's first packet and asks about it (ConnContext), which is how
// a drain knows that quic-go has begun every connection it was handed. A
// quic-go that stopped doing so would fail here, not in production.
func TestDrainSeesMarker(t *testing.T) {
	_, pair, pc, family := drainFixture(t)
	var out testlog.Buffer
	env := listen.CompanionEnv{
		Log: logx.Zerolog(zerolog.New(&out)), Generation: 1, Family: family,
		TLS: &tls.Config{Certificates: []tls.Certificate{pair}}, Handler: http.NotFoundHandler(),
	}
	ctx, drain := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); serve(ctx, pc, env) }()
	drain()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("HTTP/3 did not end")
	}
	if s := out.String(); !strings.Contains(s, "HTTP/3 drained") || strings.Contains(s, "marker") {
		t.Fatalf("log:\n%s", s)
	}
}

// TestRefusalReported: when quic-go refuses a connection it has begun
// (here its listener is closed while the client's second Initial is held
// back), the connection is counted as refused and reported, so that an
// operator sees a client turned away.
func TestRefusalReported(t *testing.T) {
	ca, pair, pc, _ := drainFixture(t)
	begun := make(chan struct{}, 16)
	testHookBegun = func() { begun <- struct{}{} }
	defer func() { testHookBegun = nil }()
	reported := make(chan net.Addr, 1)
	h := newHandshakes(func(a net.Addr, _ int, _ time.Duration) { reported <- a })
	ln := listenEarly(t, pc, pair, h.begin)
	relay := newHoldingRelay(t, pc.LocalAddr().(*net.UDPAddr))
	ctr := clientTransport(t)
	dialed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := ctr.Dial(ctx, relay.front.LocalAddr(), &tls.Config{
			RootCAs: ca.Pool(), ServerName: "127.0.0.1", NextProtos: []string{qhttp3.NextProtoH3},
			CurvePreferences: []tls.CurveID{tls.X25519MLKEM768}, // a ClientHello of two Initials
		}, &quic.Config{})
		if err == nil {
			c.CloseWithError(0, "")
		}
		dialed <- err
	}()
	select {
	case <-begun:
	case err := <-dialed:
		t.Fatalf("the handshake ended before it could be held: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the server began no connection")
	}
	ln.Close() // quic-go refuses the connection in its handshake
	relay.release()
	select {
	case a := <-reported:
		if a.String() != relay.front.LocalAddr().String() {
			t.Errorf("reported %v, the client is %v", a, relay.front.LocalAddr())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the refusal was not reported")
	}
	h.mu.Lock()
	refused, abandoned, open := h.refused, h.abandoned, h.open
	h.mu.Unlock()
	if refused != 1 || abandoned != 1 || open != 0 {
		t.Errorf("refused %d, abandoned %d, open %d; want 1, 1, 0", refused, abandoned, open)
	}
	if err := <-dialed; err == nil || !strings.Contains(err.Error(), "CONNECTION_REFUSED") {
		t.Errorf("the client's dial: %v, want CONNECTION_REFUSED", err)
	}
}

// TestLateConnectionServesItsBurst: a connection accepted during the drain
// is told GOAWAY only once the requests that follow its first one have
// come and gone quiet; none of them is rejected. (quic-go's client sends
// every request that waited for the connection as its handshake completes,
// often retries of requests the drain rejected.)
func TestLateConnectionServesItsBurst(t *testing.T) {
	defer func(g, q time.Duration) { lateGrace, quietGap = g, q }(lateGrace, quietGap)
	lateGrace, quietGap = 20*time.Second, 2*time.Second // the burst comes well within quietGap

	ca, pair, pc, _ := drainFixture(t)
	str := &quic.Transport{Conn: pc}
	defer str.Close()
	ln, err := str.Listen(tlsConfig(&tls.Config{Certificates: []tls.Certificate{pair}}, [32]byte{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	firstSeen, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/first" {
			close(firstSeen)
			<-release
		}
		io.WriteString(w, "ok")
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept(ctx)
		if err != nil {
			return
		}
		serveLate(ctx, c, h, newHandshakes(nil))
	}()

	conn, err := clientTransport(t).Dial(ctx, pc.LocalAddr(),
		&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", NextProtos: []string{qhttp3.NextProtoH3}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	cc := (&qhttp3.Transport{}).NewClientConn(conn) // no retries: a rejection is an error
	get := func(path string) error {
		req, _ := http.NewRequest(http.MethodGet, "https://127.0.0.1"+path, nil)
		resp, err := cc.RoundTrip(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && string(b) != "ok" {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	first := make(chan error, 1)
	go func() { first <- get("/first") }()
	select {
	case <-firstSeen:
	case err := <-first:
		t.Fatalf("the first request ended before it was served: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the first request was not served")
	}
	errs := make(chan error, 9)
	for range 9 {
		go func() { errs <- get("/") }()
	}
	for range 9 {
		if err := <-errs; err != nil {
			t.Errorf("a request of the burst: %v", err)
		}
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("the first request: %v", err)
	}
	select {
	case <-served: // told GOAWAY once the burst went quiet, and over
	case <-time.After(10 * time.Second):
		t.Fatal("the late connection was not told GOAWAY after its burst")
	}
}

// TestBacklogHoldsAStormOfConnections: more connections complete their
// handshake at once than quic-go keeps for accepting (32), while the
// HTTP/3 server takes none of them (as when the handshakes leave it no
// CPU right after a restart); none is refused, and the server then gets
// every one.
func TestBacklogHoldsAStormOfConnections(t *testing.T) {
	const n = 40
	ca, pair, pc, _ := drainFixture(t)
	h := newHandshakes(nil)
	ln := listenEarly(t, pc, pair, h.begin)
	q := newAccepted(ln)
	go q.pump()
	ctr := clientTransport(t)
	var wg sync.WaitGroup
	dialErrs := make(chan error, n)
	for range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := ctr.Dial(ctx, pc.LocalAddr(), &tls.Config{
				RootCAs: ca.Pool(), ServerName: "127.0.0.1", NextProtos: []string{qhttp3.NextProtoH3},
			}, &quic.Config{})
			if err != nil {
				dialErrs <- err
				return
			}
			t.Cleanup(func() { c.CloseWithError(0, "") })
		})
	}
	wg.Wait()
	close(dialErrs)
	for err := range dialErrs {
		t.Fatalf("dial: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		q.mu.Lock()
		held := len(q.conns)
		q.mu.Unlock()
		h.mu.Lock()
		refused := h.refused
		h.mu.Unlock()
		if refused != 0 {
			t.Fatalf("%d connections refused, %d taken from quic-go", refused, held)
		}
		if held == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections taken from quic-go after 20s", held, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	f := &feed{q: q}
	for i := range n {
		c, err := f.Accept(context.Background())
		if err != nil {
			t.Fatalf("Accept %d: %v", i, err)
		}
		if c.Context().Err() != nil {
			t.Fatalf("connection %d was closed in the backlog: %v", i, context.Cause(c.Context()))
		}
	}
	ln.Close()
	<-q.ended
}
