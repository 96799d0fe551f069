package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/handoff-go/handoff/hijack"
	"github.com/handoff-go/handoff/listeners"
	"github.com/handoff-go/handoff/tlsreload"
)

// errHammered is the cause of handler contexts cancelled at hammer time,
// errDrain that of TCP handler contexts cancelled when a drain starts.
var (
	errHammered = errors.New("server: hammer time")
	errDrain    = errors.New("server: draining")
)

// service is one named listener being served.
type service struct {
	name, addr string
	spec       *listeners.Spec
	raw        net.Listener // the socket, exported on restart
	inherited  bool
	log        zerolog.Logger
	tracker    *listeners.Tracker
	ln         net.Listener // tracked, TLS-wrapped if need be
	certs      *tlsreload.Reloader

	hs      *http.Server
	h2      *h2set // HTTP/2 connections, nil if none can be
	handler listeners.TCPHandler
	active  atomic.Int64 // TCP handlers running

	drainCtx    context.Context // TCP handlers; cancelled when a drain starts
	drainCancel context.CancelCauseFunc
	baseCtx     context.Context // every handler; cancelled at hammer time
	baseCancel  context.CancelCauseFunc
}

func (s *Server) newService(d decl, raw net.Listener, inherited bool) (*service, error) {
	svc := &service{
		name:      d.name,
		addr:      d.addr,
		spec:      d.spec,
		raw:       raw,
		inherited: inherited,
		log:       s.log.With().Str("listener", d.name).Logger(),
	}
	svc.baseCtx, svc.baseCancel = context.WithCancelCause(hijack.NewContext(context.Background(), &s.hj))
	svc.drainCtx, svc.drainCancel = context.WithCancelCause(svc.baseCtx)

	initial := http.StateNew
	if d.spec.Kind == listeners.KindTCP {
		initial = http.StateActive
	}
	svc.tracker = listeners.NewTracker(initial)
	svc.tracker.OnHijack = func(c *listeners.Conn) func() { return s.hj.Add(c) }
	svc.ln = svc.tracker.Listen(raw)

	var tlsCfg *tls.Config
	if d.spec.TLS() {
		var err error
		if tlsCfg, err = svc.tlsConfig(); err != nil {
			svc.baseCancel(nil)
			return nil, err
		}
	}
	switch d.spec.Kind {
	case listeners.KindTCP:
		svc.handler = d.spec.TCP
	default:
		svc.buildHTTP(s, tlsCfg)
	}
	if tlsCfg != nil {
		svc.ln = tls.NewListener(svc.ln, tlsCfg)
	}
	return svc, nil
}

// tlsConfig builds the listener's TLS configuration: TLS 1.2 at least,
// HTTP/2 offered by ALPN on HTTP listeners, certificates from files behind
// a reloader.
func (svc *service) tlsConfig() (*tls.Config, error) {
	base := &tls.Config{}
	if svc.spec.TLSConfig != nil {
		base = svc.spec.TLSConfig.Clone()
	}
	if base.MinVersion == 0 {
		base.MinVersion = tls.VersionTLS12
	}
	if svc.spec.Kind == listeners.KindHTTP && len(base.NextProtos) == 0 {
		base.NextProtos = []string{http2.NextProtoTLS, "http/1.1"}
	}
	if len(svc.spec.Certs) == 0 {
		return base, nil
	}
	pairs := make([]tlsreload.Pair, len(svc.spec.Certs))
	for i, p := range svc.spec.Certs {
		pairs[i] = tlsreload.Pair{CertFile: p.CertFile, KeyFile: p.KeyFile}
	}
	r, err := tlsreload.New(base, pairs, svc.spec.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("server: listener %q: %w", svc.name, err)
	}
	svc.certs = r
	return r.Config(), nil
}

func (svc *service) buildHTTP(s *Server, tlsCfg *tls.Config) {
	hs := &http.Server{
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		ErrorLog:          log.New(logWriter{svc.log}, "", 0),
	}
	for _, fn := range svc.spec.Configure {
		fn(hs)
	}
	h := svc.spec.Handler
	if h == nil {
		h = s.cfg.handler
	}
	if h == nil {
		h = http.DefaultServeMux
	}

	// HTTP/2 goes through x/net/http2, with a drain of its own (see
	// h2goaway.go): hs.Shutdown would close idle HTTP/1 keep-alive
	// connections under clients that are sending, so it is never called.
	if set, err := newH2Set(hs.IdleTimeout); err == nil {
		svc.h2 = set
		if tlsCfg != nil {
			hs.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){
				http2.NextProtoTLS: func(hs *http.Server, c *tls.Conn, h http.Handler) {
					svc.tracker.MarkHTTP2(c)
					set.serveTLS(hs, c, h)
				},
			}
		}
		if svc.spec.H2C {
			h = h2c.NewHandler(h, set.srv)
		}
	} else {
		svc.log.Warn().Err(err).Msg("HTTP/2 disabled")
	}
	hs.Handler = s.track(h)
	user := hs.ConnState
	hs.ConnState = func(c net.Conn, st http.ConnState) {
		svc.tracker.ConnState(c, st)
		if user != nil {
			user(c, st)
		}
	}
	hs.BaseContext = func(net.Listener) context.Context { return svc.baseCtx }
	svc.hs = hs
}

// track counts requests in flight and, while draining, asks HTTP/1
// clients to close the connection after the response.
func (s *Server) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inflight.Add(1)
		defer s.inflight.Add(-1)
		if r.ProtoMajor == 1 && s.draining.Load() {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// serve accepts until the listener is closed.
func (svc *service) serve() error {
	if svc.hs != nil {
		err := svc.hs.Serve(svc.ln)
		if errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
	backoff := time.Duration(0)
	for {
		c, err := svc.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if !transient(err) {
				return err
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			svc.log.Warn().Err(err).Dur("retry_in", backoff).Msg("accept failed")
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		svc.active.Add(1)
		go func() {
			defer svc.active.Add(-1)
			defer c.Close()
			svc.handler(svc.drainCtx, c)
		}()
	}
}

// transient reports whether an accept error may go away by itself.
func transient(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// stopAccepting closes the socket of this process; a child that inherited
// it keeps its own descriptor and goes on accepting.
func (svc *service) stopAccepting() {
	if err := svc.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		svc.log.Warn().Err(err).Msg("closing listener")
	}
}

// startDrain tells TCP handlers that the server drains; HTTP/1 learns it
// from each response, HTTP/2 from sweep.
func (svc *service) startDrain() {
	svc.drainCancel(errDrain)
}

// sweep is one step of the drain: close quiet idle HTTP/1 connections,
// move HTTP/2 connections along their GOAWAY steps.
func (svc *service) sweep(now time.Time, grace time.Duration) {
	svc.tracker.Sweep(now, grace, finWait)
	if svc.h2 != nil {
		svc.h2.poll(now)
	}
}

// open counts what keeps the drain waiting: connections and TCP handlers.
func (svc *service) open() int {
	return svc.tracker.Len() + int(svc.active.Load())
}

// hammer closes every connection and cancels every handler context.
func (svc *service) hammer() int {
	// Cancel first, so a handler learns why before its connection dies.
	svc.baseCancel(errHammered)
	return svc.tracker.CloseAll()
}

// release frees what the service holds once it has stopped.
func (svc *service) release() {
	svc.baseCancel(context.Canceled)
	if svc.hs != nil {
		svc.hs.Close()
	}
}

// logWriter sends net/http's error log to zerolog.
type logWriter struct{ log zerolog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	msg := string(p)
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
	}
	w.log.Warn().Msg(msg)
	return len(p), nil
}
