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
// the requests in flight. TLS session tickets and QUIC tokens are shared
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
	"sync"
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
	tr := &quic.Transport{
		Conn:                  r,
		ConnectionIDGenerator: cidGenerator{r},
		StatelessResetKey:     &rst,
		TokenGeneratorKey:     &tok,
	}
	defer tr.Close()
	ln, err := tr.ListenEarly(tlsConfig(env.TLS, keys.Ticket), &quic.Config{Allow0RTT: true})
	if err != nil {
		log.Error().Err(err).Msg("HTTP/3: cannot listen; no HTTP/3")
		return
	}
	hs := &qhttp3.Server{Handler: env.Handler}
	conns := &tracked{EarlyListener: ln, conns: map[*quic.Conn]struct{}{}}
	if env.OnHammer != nil {
		env.OnHammer(conns.closeAll)
	}
	served := make(chan error, 1)
	go func() { served <- hs.ServeListener(conns) }()

	select {
	case <-ctx.Done(): // the drain: new connections go to the new process
	case <-r.Done(): // the socket was closed: hammer time, or release
	case err := <-served:
		log.Error().Err(err).Msg("HTTP/3 server failed")
		return
	}
	r.Drain()
	ln.Close()
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
	shut := make(chan struct{})
	go func() {
		defer close(shut)
		if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Warn().Err(err).Msg("HTTP/3 shutdown")
		}
		<-served
	}()
	select {
	case <-shut:
	case <-r.Done():
		// Hammer time. quic-go's Close waits for every handler to return,
		// and a handler may never do so: like the HTTP/1 and HTTP/2
		// handlers at hammer time, they are left to the process's exit.
		select {
		case <-shut:
		case <-time.After(hammerGrace):
			log.Warn().Msg("HTTP/3 handlers still running at hammer time are abandoned")
		}
	}
	st := r.Stats()
	log.Info().Int64("local", st.Local).Int64("received", st.Received).Int64("forwarded", st.Forwarded).
		Int64("unknown", st.Unknown).Int64("malformed", st.Malformed).Int64("foreign", st.Foreign).
		Int64("no_route", st.NoRoute).Int64("overflow", st.Overflow).Msg("HTTP/3 drained; packets routed")
}

// tracked is the QUIC listener, remembering the connections it accepted
// so that hammer time can close them while their clients can still be
// told.
type tracked struct {
	*quic.EarlyListener
	mu    sync.Mutex
	conns map[*quic.Conn]struct{}
}

func (l *tracked) Accept(ctx context.Context) (*quic.Conn, error) {
	c, err := l.EarlyListener.Accept(ctx)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	context.AfterFunc(c.Context(), func() {
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
	})
	return c, nil
}

// h3NoError is HTTP/3's H3_NO_ERROR (RFC 9114, section 8.1).
const h3NoError = 0x100

// closeAll closes every open connection with CONNECTION_CLOSE, waiting
// hammerGrace at most for the packets to go out.
func (l *tracked) closeAll() {
	l.mu.Lock()
	conns := make([]*quic.Conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
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
