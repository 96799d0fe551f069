// Package http3 serves HTTP/3 (QUIC) beside an HTTPS listener, on a UDP
// socket at the same address, with quic-go, and keeps QUIC connections
// alive across restarts:
//
//	srv.Listen("api", ":443", listeners.HTTP(h), listeners.TLSFiles("api.crt", "api.key"), http3.Enable())
//
// The UDP socket is a listener of its own ("api-quic"), handed to each
// new process like any other. The HTTPS listener's responses advertise it
// (Alt-Svc: h3=":443"), and HTTP/3 is served with the listener's handler
// and certificates (reloads and ACME included).
//
// After a restart both processes read the one socket. The connection IDs
// a process issues name its generation, under a key only the server's
// processes know, and each process passes on what it reads to the process
// that owns the connection (internal/quicroute): new connections go to the
// new process, and a connection of the old one is served by it until it
// ends or hammer time. The old process sends HTTP/3 GOAWAY and finishes
// the requests in flight; a connection still in its handshake when the
// drain begins is completed, and told GOAWAY once its first request is
// being served (closing the QUIC listener at once would refuse it, and
// clients do not retry that). TLS session tickets and QUIC tokens are shared
// by the processes, so a client resumes (and sends 0-RTT) across a
// restart.
//
// quic-go is linked only into programs that import this package.
package http3

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	qhttp3 "github.com/quic-go/quic-go/http3"

	"github.com/handoff-go/handoff/internal/listen"
	"github.com/handoff-go/handoff/internal/quicroute"
	"github.com/handoff-go/handoff/listeners"
)

// hammerGrace is how long handlers are given to return once their
// connections are closed at hammer time.
const hammerGrace = 100 * time.Millisecond

// Enable serves HTTP/3 beside the HTTPS listener it is given to.
func Enable() listeners.Option {
	return func(s *listen.Spec) {
		s.Companion = &listen.Companion{Suffix: "quic", AltSvc: "h3", Serve: serve}
	}
}

// cidGenerator issues the router's connection IDs to quic-go.
type cidGenerator struct{ r *quicroute.Router }

func (g cidGenerator) GenerateConnectionID() (quic.ConnectionID, error) {
	b, err := g.r.GenerateConnectionID()
	return quic.ConnectionIDFromBytes(b), err
}

func (g cidGenerator) ConnectionIDLen() int { return quicroute.CIDLen }

// serve serves HTTP/3 on pc until the drain is over for it (or hammer
// time).
func serve(ctx context.Context, pc net.PacketConn, env listen.CompanionEnv) {
	log := env.Log
	if env.TLS == nil || env.Handler == nil {
		log.Error().Msg("HTTP/3: the HTTPS listener is not serving; no HTTP/3")
		return
	}
	keys := quicroute.DeriveKeys(env.Family)
	r, err := quicroute.New(pc, keys, env.Generation, func(what string, err error) {
		log.Warn().Err(err).Msg("HTTP/3: " + what)
	})
	if err != nil {
		log.Error().Err(err).Msg("HTTP/3: cannot route packets; no HTTP/3")
		return
	}
	defer r.Wait()
	defer r.Close()
	rst := quic.StatelessResetKey(keys.StatelessRst)
	tok := quic.TokenGeneratorKey(keys.Token)
	begun := newHandshakes(func(remote net.Addr, open int, after time.Duration) {
		log.Warn().Str("remote", remote.String()).Int("begun_not_taken", open).Dur("after", after).
			Msg("HTTP/3: quic-go refused a connection in its handshake")
	})
	tr := &quic.Transport{
		Conn:                  r,
		ConnectionIDGenerator: cidGenerator{r},
		StatelessResetKey:     &rst,
		TokenGeneratorKey:     &tok,
		ConnContext:           begun.begin,
	}
	defer tr.Close()
	ln, err := tr.ListenEarly(tlsConfig(env.TLS, keys.Ticket), &quic.Config{Allow0RTT: true})
	if err != nil {
		log.Error().Err(err).Msg("HTTP/3: cannot listen; no HTTP/3")
		return
	}
	q := newAccepted(ln)
	go q.pump()
	if env.OnHammer != nil {
		env.OnHammer(q.closeAll)
	}
	hs := &qhttp3.Server{Handler: env.Handler, ConnContext: begun.taken}
	first := &feed{q: q}
	served := make(chan error, 1)
	go func() { served <- hs.ServeListener(first) }()

	select {
	case <-ctx.Done(): // the drain: new connections go to the new process
	case <-r.Done(): // the socket was closed: hammer time, or release
	case err := <-served:
		log.Error().Err(err).Msg("HTTP/3 server failed")
		ln.Close()
		return
	}
	r.Drain()
	// GOAWAY, then wait for requests and connections, until hammer time
	// closes the socket (and with it the router).
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.Done():
			cancel()
		case <-sctx.Done():
		}
	}()
	var late sync.WaitGroup
	var lateN atomic.Int64
	lateOne := func(c *quic.Conn) {
		lateN.Add(1)
		late.Go(func() { serveLate(sctx, c, env.Handler, begun) })
	}
	shut := make(chan struct{})
	go func() {
		defer close(shut)
		if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Warn().Err(err).Msg("HTTP/3 shutdown")
		}
		<-served
		if c := first.dropped(); c != nil {
			lateOne(c)
		}
	}()
	// Connections quic-go hands over from now on were in their handshake
	// when the drain began (new ones go to the new process): each is
	// served, and told GOAWAY, by a server of its own. Closing the QUIC
	// listener would refuse (CONNECTION_REFUSED, which clients do not
	// retry) those still in their handshake; it waits until every
	// connection begun here has been taken by a server, or has ended.
	lateDone := make(chan struct{})
	go func() {
		defer close(lateDone)
		// Until the listener is closed, and then what is still in the
		// backlog: it was accepted before, and is served too.
		for c := range q.ch {
			lateOne(c)
		}
	}()
	if !begun.settle(r, r.Done()) {
		log.Warn().Msg("HTTP/3: quic-go did not see the drain's marker; connections still in their handshake may be refused")
	}
	ln.Close()
	drained := make(chan struct{})
	go func() {
		<-shut
		<-lateDone
		late.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-r.Done():
		// Hammer time. quic-go's Close waits for every handler to return,
		// and a handler may never do so: like the HTTP/1 and HTTP/2
		// handlers at hammer time, they are left to the process's exit.
		select {
		case <-drained:
		case <-time.After(hammerGrace):
			log.Warn().Msg("HTTP/3 handlers still running at hammer time are abandoned")
		}
	}
	st := r.Stats()
	begun.mu.Lock()
	abandoned, refused := begun.abandoned, begun.refused
	begun.mu.Unlock()
	log.Info().Int64("late_conns", lateN.Load()).Int64("abandoned_handshakes", abandoned).Int64("refused_handshakes", refused).Int64("local", st.Local).Int64("received", st.Received).Int64("forwarded", st.Forwarded).
		Int64("unknown", st.Unknown).Int64("malformed", st.Malformed).Int64("foreign", st.Foreign).
		Int64("no_route", st.NoRoute).Int64("overflow", st.Overflow).Msg("HTTP/3 drained; packets routed")
}

// markerEvery is how often the drain queues a marker until quic-go sees
// one (it drops packets when its queue is full); markerWait how long it
// tries.
const (
	markerEvery = 100 * time.Millisecond
	markerWait  = 2 * time.Second
)

// handshakes counts the QUIC connections quic-go has begun (its
// ConnContext) that the HTTP/3 server has not yet taken (its own
// ConnContext) and that have not ended: those in their handshake or
// waiting to be accepted.
type handshakes struct {
	mu        sync.Mutex
	open      int
	abandoned int64         // connections that ended before a server took them
	refused   int64         // of those, the ones quic-go refused (CONNECTION_REFUSED)
	marked    bool          // quic-go saw a marker
	wake      chan struct{} // one slot: open or marked changed

	// onRefused reports a connection quic-go refused (its listener was
	// closed during the handshake, or its accept queue was full): the
	// client's address, how many connections begun here are still waiting
	// for a server, and how long after it began it was refused.
	onRefused func(remote net.Addr, open int, after time.Duration)
}

func newHandshakes(onRefused func(net.Addr, int, time.Duration)) *handshakes {
	return &handshakes{wake: make(chan struct{}, 1), onRefused: onRefused}
}

// pendingKey is the context key of a connection's *pending.
type pendingKey struct{}

// pending is one connection begun and not yet taken.
type pending struct {
	h    *handshakes
	once sync.Once
	stop func() bool // the AfterFunc that counts it out if it ends first
}

// errMarker turns a marker away (quic-go answers it with
// CONNECTION_REFUSED, which goes nowhere).
var errMarker = errors.New("a drain marker, not a connection")

// begin is quic-go's ConnContext: a new connection, or a marker.
func (h *handshakes) begin(ctx context.Context, info *quic.ClientInfo) (context.Context, error) {
	if quicroute.IsMarker(info.RemoteAddr) {
		h.mu.Lock()
		h.marked = true
		h.mu.Unlock()
		h.poke()
		return nil, errMarker
	}
	p := &pending{h: h}
	h.mu.Lock()
	h.open++
	h.mu.Unlock()
	began := time.Now()
	ctx = context.WithValue(ctx, pendingKey{}, p)
	p.stop = context.AfterFunc(ctx, func() { // the handshake failed, or the connection closed
		p.done(true)
		if refusedHere(context.Cause(ctx)) {
			h.mu.Lock()
			h.refused++
			open := h.open
			h.mu.Unlock()
			if h.onRefused != nil {
				h.onRefused(info.RemoteAddr, open, time.Since(began))
			}
		}
	})
	if testHookBegun != nil {
		testHookBegun()
	}
	return ctx, nil
}

// refusedHere reports whether err, why a connection ended, is this
// side's CONNECTION_REFUSED.
func refusedHere(err error) bool {
	var te *quic.TransportError
	return errors.As(err, &te) && te.ErrorCode == quic.ConnectionRefused && !te.Remote
}

// Test hooks: a connection was begun; the drain waits with open
// connections begun and not taken, marked if quic-go saw a marker.
var (
	testHookBegun    func()
	testHookSettling func(open int, marked bool)
)

// taken is the HTTP/3 server's ConnContext: it serves c from now on.
func (h *handshakes) taken(ctx context.Context, c *quic.Conn) context.Context {
	if p, ok := ctx.Value(pendingKey{}).(*pending); ok {
		p.stop()
		p.done(false)
	}
	return ctx
}

func (p *pending) done(abandoned bool) {
	p.once.Do(func() {
		p.h.mu.Lock()
		p.h.open--
		if abandoned {
			p.h.abandoned++
		}
		p.h.mu.Unlock()
		p.h.poke()
	})
}

func (h *handshakes) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// settle waits, once r drains, until quic-go has begun every connection r
// handed it (it sees a marker queued behind them) and the HTTP/3 server
// has taken each one or it has ended, or until stop is closed. It reports
// false if quic-go saw no marker within markerWait; it then stops marking
// and waits for the connections it knows of (quic-go ends a handshake
// that makes no progress after 5 s).
func (h *handshakes) settle(r *quicroute.Router, stop <-chan struct{}) bool {
	r.Mark()
	every := time.NewTicker(markerEvery)
	defer every.Stop()
	giveUp := time.Now().Add(markerWait)
	for {
		h.mu.Lock()
		marked, open := h.marked, h.open
		h.mu.Unlock()
		if open == 0 && (marked || time.Now().After(giveUp)) {
			return marked
		}
		if testHookSettling != nil {
			testHookSettling(open, marked)
		}
		tick := every.C
		if marked || time.Now().After(giveUp) {
			tick = nil
		}
		select {
		case <-h.wake:
		case <-tick:
			r.Mark()
		case <-stop:
			return true
		}
	}
}

// accepted takes the connections quic-go accepts, for the HTTP/3
// servers to serve, and remembers them so that hammer time can close
// them while their clients can still be told.
//
// quic-go keeps at most 32 connections that have done their handshake
// and wait to be accepted, and refuses the next one (CONNECTION_REFUSED,
// which clients do not retry). Right after a restart every client of the
// old process connects to the new one at once, and the handshakes keep
// the CPU busy: a pump that waited for the server to take each
// connection before it accepted the next would run too seldom to keep
// that queue from filling. The pump therefore only moves connections into
// a backlog of its own, and empties quic-go's queue whenever it runs.
type accepted struct {
	ln    *quic.EarlyListener
	ch    chan *quic.Conn // the backlog, taken by the servers; closed after the last
	ended chan struct{}   // the listener is closed: nothing more comes into ch

	mu    sync.Mutex
	conns map[*quic.Conn]struct{}
}

// acceptBacklog bounds the backlog: past it the pump waits for the
// servers, and quic-go's own queue takes the rest.
const acceptBacklog = 1024

func newAccepted(ln *quic.EarlyListener) *accepted {
	return &accepted{ln: ln, ch: make(chan *quic.Conn, acceptBacklog), ended: make(chan struct{}), conns: map[*quic.Conn]struct{}{}}
}

// pump accepts until the listener is closed.
func (q *accepted) pump() {
	defer close(q.ended)
	defer close(q.ch) // before ended: a receiver that saw ended finds ch closed
	for {
		c, err := q.ln.Accept(context.Background())
		if err != nil {
			return
		}
		q.mu.Lock()
		q.conns[c] = struct{}{}
		q.mu.Unlock()
		context.AfterFunc(c.Context(), func() {
			q.mu.Lock()
			delete(q.conns, c)
			q.mu.Unlock()
		})
		select {
		case q.ch <- c:
		case <-c.Context().Done(): // over before a server took it
		}
	}
}

// feed is the QUIC listener of the HTTP/3 server that serves until the
// drain.
type feed struct {
	q    *accepted
	last *quic.Conn // what the latest Accept returned
}

// Accept is called by one goroutine at a time (the server's accept loop).
func (f *feed) Accept(ctx context.Context) (*quic.Conn, error) {
	f.last = nil
	select {
	case c, ok := <-f.q.ch:
		if !ok {
			return nil, quic.ErrServerClosed
		}
		f.last = c
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-f.q.ended:
		return nil, quic.ErrServerClosed
	}
}

func (f *feed) Addr() net.Addr { return f.q.ln.Addr() }
func (f *feed) Close() error   { return nil }

// dropped is, once the server's accept loop has returned, the connection
// it was handed and left unserved: quic-go's HTTP/3 server returns at
// once if its shutdown began while Accept was returning.
func (f *feed) dropped() *quic.Conn { return f.last }

// lateGrace is how long a connection accepted during the drain is given,
// once its handshake is complete, before it is told GOAWAY; quietGap ends
// that wait sooner, once the connection's first requests have come and
// none has come since for that long.
var (
	lateGrace = time.Second
	quietGap  = 50 * time.Millisecond
)

// serveLate serves c, which quic-go accepted after the drain began, with
// a server of its own, and tells it GOAWAY once the burst of requests that
// follows its handshake is over (see waitBurst). Sooner, the GOAWAY would
// race those requests: quic-go's server rejects each request stream that
// arrives after its GOAWAY (H3_REQUEST_REJECTED), and its client closes a
// connection that has no request in flight when GOAWAY arrives, while it
// opens one.
//
// The burst matters more than its first request: quic-go's client retries
// a rejected request once, on a new connection, and every request that
// waited for that connection goes out as its handshake completes. A late
// connection is often that new connection (the client's first packets
// reached this process before the drain began, or were split between two
// processes), its requests retries of requests this drain rejected; a
// second rejection reaches the caller.
func serveLate(ctx context.Context, c *quic.Conn, h http.Handler, begun *handshakes) {
	taken := make(chan struct{})
	arrived := make(chan struct{}, 1)
	s := &qhttp3.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case arrived <- struct{}{}:
			default:
			}
			h.ServeHTTP(w, r)
		}),
		ConnContext: func(ctx context.Context, c *quic.Conn) context.Context {
			ctx = begun.taken(ctx, c)
			close(taken)
			return ctx
		},
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.ServeQUICConn(c)
	}()
	select {
	case <-taken:
		waitBurst(ctx, c, arrived)
		s.Shutdown(ctx)
	case <-done: // could not serve it (quic-go closes it)
	}
	<-done
	c.CloseWithError(h3NoError, "")
}

// waitBurst waits, once c's handshake is complete, until requests have
// come (arrived) and none for quietGap, or lateGrace has passed, or c or
// ctx ends.
func waitBurst(ctx context.Context, c *quic.Conn, arrived <-chan struct{}) {
	select {
	case <-c.HandshakeComplete():
	case <-c.Context().Done():
		return
	case <-ctx.Done():
		return
	}
	limit := time.NewTimer(lateGrace)
	defer limit.Stop()
	gap := time.NewTimer(quietGap)
	gap.Stop()
	defer gap.Stop()
	var quiet <-chan time.Time // none until the first request
	for {
		select {
		case <-arrived:
			gap.Reset(quietGap) // (Go 1.23 timers: no stale tick after Stop or Reset)
			quiet = gap.C
		case <-quiet:
			return
		case <-limit.C:
			return
		case <-c.Context().Done():
			return
		case <-ctx.Done():
			return
		}
	}
}

// h3NoError is HTTP/3's H3_NO_ERROR (RFC 9114, section 8.1).
const h3NoError = 0x100

// closeAll closes every open connection with CONNECTION_CLOSE, waiting
// hammerGrace at most for the packets to go out.
func (q *accepted) closeAll() {
	q.mu.Lock()
	conns := make([]*quic.Conn, 0, len(q.conns))
	for c := range q.conns {
		conns = append(conns, c)
	}
	q.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.CloseWithError(h3NoError, "hammer time")
			}()
		}
		wg.Wait()
	}()
	select {
	case <-done:
	case <-time.After(hammerGrace):
	}
}

// tlsConfig is the listener's TLS for QUIC: h3 by ALPN, and session
// tickets every process of the server can open.
func tlsConfig(base *tls.Config, ticket [32]byte) *tls.Config {
	withTickets := func(c *tls.Config) *tls.Config {
		c = c.Clone()
		c.SetSessionTicketKeys([][32]byte{ticket})
		return c
	}
	cfg := withTickets(base)
	if get := base.GetConfigForClient; get != nil {
		cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := get(hello)
			if c == nil || err != nil {
				return c, err
			}
			return withTickets(c), nil
		}
	}
	return qhttp3.ConfigureTLSConfig(cfg)
}
