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
	"net/http"
	"time"

	"github.com/quic-go/quic-go"
	qhttp3 "github.com/quic-go/quic-go/http3"

	"github.com/handoff-go/handoff/internal/listen"
	"github.com/handoff-go/handoff/internal/quicroute"
	"github.com/handoff-go/handoff/listeners"
)

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
	served := make(chan error, 1)
	go func() { served <- hs.ServeListener(ln) }()

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
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Warn().Err(err).Msg("HTTP/3 shutdown")
	}
	<-served
	st := r.Stats()
	log.Info().Int64("local", st.Local).Int64("received", st.Received).Int64("forwarded", st.Forwarded).
		Int64("unknown", st.Unknown).Int64("malformed", st.Malformed).Int64("foreign", st.Foreign).
		Int64("no_route", st.NoRoute).Int64("overflow", st.Overflow).Msg("HTTP/3 drained; packets routed")
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

var _ = time.Second
var _ = http.StatusOK
