package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/internal/listen"
	"github.com/handoff-go/handoff/internal/logx"

	"github.com/handoff-go/handoff/internal/h2drain"
	"github.com/handoff-go/handoff/internal/hijack"
	"github.com/handoff-go/handoff/internal/tlsreload"
)

// service is one named listener being served.
type service struct {
	name      string
	addr      listen.Addr
	spec      *listen.Spec
	raw       listen.Socket // the socket, exported on restart
	inherited bool
	log       logx.Logger
	tracker   *listen.Tracker
	ln        net.Listener        // tracked, TLS-wrapped if need be; nil for packets
	pc        net.PacketConn      // a packet listener's socket
	tlsCfg    *tls.Config         // nil without TLS
	certs     *tlsreload.Reloader // certificates from files
	source    listen.CertSource   // or from elsewhere (ACME)
	stopSrc   func()

	hs        *http.Server
	h2        *h2drain.Set // HTTP/2 connections, nil if none can be
	handler   func(context.Context, net.Conn)
	active    atomic.Int64    // handlers running: TCP, packet, a Serve kind's serve and shutdown
	changed   func()          // tells the drain that what it waits for may have ended
	accepting <-chan struct{} // a Serve kind's: closed once serve accepts

	warnMu sync.Mutex
	warned map[string]time.Duration // expiry warnings given, by serial

	drainCtx    context.Context // TCP handlers; cancelled when a drain starts
	drainCancel context.CancelCauseFunc
	baseCtx     context.Context // every handler; cancelled at hammer time
	baseCancel  context.CancelCauseFunc
}

// newService readies the listener d on its socket raw; l is what it needs
// to know of the others.
func (s *Server) newService(d decl, raw listen.Socket, inherited bool, l links) (*service, error) {
	svc := &service{
		name:      d.name,
		addr:      d.addr,
		spec:      d.spec,
		raw:       raw,
		inherited: inherited,
		log:       s.log.WithStr("listener", d.name),
		changed:   s.wakeDrain,
	}
	svc.baseCtx, svc.baseCancel = context.WithCancelCause(hijack.NewContext(context.Background(), &s.hj))
	svc.drainCtx, svc.drainCancel = context.WithCancelCause(svc.baseCtx)

	if d.spec.Kind == listen.KindPacket {
		pc, ok := raw.(net.PacketConn)
		if !ok {
			svc.baseCancel(nil)
			return nil, fmt.Errorf("server: listener %q: %T is not a packet socket", d.name, raw)
		}
		svc.pc = pc
		return svc, nil
	}
	rawLn, ok := raw.(net.Listener)
	if !ok {
		svc.baseCancel(nil)
		return nil, fmt.Errorf("server: listener %q: %T is not a stream listener", d.name, raw)
	}
	// Only HTTP connections go idle; the others are busy while open.
	initial := http.StateActive
	if d.spec.Kind == listen.KindHTTP {
		initial = http.StateNew
	}
	svc.tracker = listen.NewTracker(initial)
	svc.tracker.Changed = s.wakeDrain
	svc.tracker.OnHijack = func(c *listen.Conn) func() {
		forget := s.hj.Add(c)
		return func() {
			forget()
			s.wakeDrain()
		}
	}
	tracked := svc.tracker.Listen(rawLn)
	svc.ln = tracked
	if d.spec.Kind == listen.KindServe {
		svc.accepting = tracked.Accepting()
	}

	var tlsCfg *tls.Config
	if d.spec.TLS() {
		var err error
		if tlsCfg, err = svc.tlsConfig(); err != nil {
			svc.baseCancel(nil)
			return nil, err
		}
	}
	if src := d.spec.Source; src != nil {
		stop, err := src.Start(listen.SourceEnv{Log: svc.log, Addr: rawLn.Addr(), HTTPAddr: l.httpAddr})
		if err != nil {
			svc.baseCancel(nil)
			return nil, fmt.Errorf("server: listener %q: %w", d.name, err)
		}
		svc.source, svc.stopSrc = src, stop
	}
	switch d.spec.Kind {
	case listen.KindTCP:
		svc.handler = d.spec.TCP
	case listen.KindHTTP:
		svc.buildHTTP(s, tlsCfg, l)
	}
	if tlsCfg != nil {
		svc.tlsCfg = tlsCfg
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
	if svc.spec.Kind == listen.KindHTTP && len(base.NextProtos) == 0 {
		base.NextProtos = []string{"h2", "http/1.1"}
	}
	if src := svc.spec.Source; src != nil {
		base.GetCertificate = src.GetCertificate
		base.NextProtos = append(base.NextProtos, src.NextProtos()...)
		return base, nil
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

func (svc *service) buildHTTP(s *Server, tlsCfg *tls.Config, l links) {
	hs := &http.Server{
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		ErrorLog:          log.New(logWriter{svc.log}, "", 0),
	}
	for _, fn := range svc.spec.Configure {
		fn(hs)
	}
	h := svc.spec.Handler
	if svc.spec.Redirect != "" {
		h = redirect(l.httpsPort, l.sources)
	}
	if h == nil {
		h = s.cfg.handler
	}
	if h == nil {
		h = http.DefaultServeMux
	}
	if c := svc.spec.Companion; c != nil && c.AltSvc != "" {
		h = altSvc(fmt.Sprintf(`%s=":%d"; ma=86400`, c.AltSvc, l.quicPort), h)
	}

	hs.Handler = s.track(h)
	if user := hs.ConnState; user != nil {
		hs.ConnState = func(c net.Conn, st http.ConnState) {
			svc.tracker.ConnState(c, st)
			user(c, st)
		}
	} else {
		hs.ConnState = svc.tracker.ConnState
	}
	// A context of its own for each connection, cancelled when it is
	// killed at hammer time: derived from one cancellable context, every
	// connection would register with it under its lock.
	base := hijack.NewContext(context.Background(), &s.hj)
	hs.BaseContext = func(net.Listener) context.Context { return base }
	userCC := hs.ConnContext
	hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if tc := listen.Unwrap(c); tc != nil {
			var cancel context.CancelCauseFunc
			ctx, cancel = context.WithCancelCause(ctx)
			tc.SetCancel(cancel) // called by Kill, at hammer time
		}
		if userCC != nil {
			ctx = userCC(ctx, c)
		}
		return ctx
	}

	// HTTP/2 is served by an inner server of its own that the drain can
	// shut down (see internal/h2drain): hs.Shutdown would close idle
	// HTTP/1 keep-alive connections under clients that are sending, so it
	// is never called.
	if hs.Protocols == nil {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetHTTP2(tlsCfg != nil)
		p.SetUnencryptedHTTP2(svc.spec.H2C)
		hs.Protocols = &p
	}
	if hs.Protocols.HTTP2() && tlsCfg != nil || hs.Protocols.UnencryptedHTTP2() {
		svc.h2 = h2drain.New(h2drain.Config{Base: hs, Handler: hs.Handler, Track: svc.tracker.MarkHTTP2})
		hs.TLSNextProto = svc.h2.TLSNextProto()
	}
	// After the HTTP/2 server has taken its copy: HTTP/2 keeps its own.
	svc.tracker.TakeTimeouts(hs)
	svc.hs = hs
}

// track counts requests in flight and, while draining, asks HTTP/1
// clients to close the connection after the response.
func (s *Server) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inflight.Add(1)
		defer func() {
			if s.inflight.Add(-1) == 0 && s.draining.Load() {
				s.wakeDrain() // a hijacker that outlived its connection, say
			}
		}()
		if r.ProtoMajor == 1 && s.draining.Load() {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// serve serves until the drain ends it.
func (svc *service) serve() error {
	switch svc.spec.Kind {
	case listen.KindPacket:
		return svc.servePacket()
	case listen.KindServe:
		return svc.serveOwn()
	}
	if svc.hs != nil {
		if svc.h2 != nil {
			// Returns when the drain is over (release); serve waits for it.
			h2done := make(chan struct{})
			defer func() { <-h2done }()
			go func() {
				defer close(h2done)
				if err := svc.h2.Serve(); err != nil {
					svc.log.Warn().Err(err).Msg("HTTP/2 server failed")
				}
			}()
		}
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
			defer svc.handlerDone()
			defer c.Close()
			svc.handler(svc.drainCtx, c)
		}()
	}
}

// handlerDone ends one of the handlers counted in active.
func (svc *service) handlerDone() {
	svc.active.Add(-1)
	svc.changed()
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
// it keeps its own descriptor and goes on accepting. A Serve kind's server
// stops accepting by its own shutdown (startDrain); a packet socket has no
// accepting to stop.
func (svc *service) stopAccepting() {
	if svc.ln == nil || svc.spec.Kind == listen.KindServe {
		return
	}
	if err := svc.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		svc.log.Warn().Err(err).Msg("closing listener")
	}
}

// startDrain tells TCP and packet handlers that the server drains, and
// calls a Serve kind's shutdown; HTTP/1 learns it from each response,
// HTTP/2 from sweep.
func (svc *service) startDrain() {
	svc.drainCancel(ErrDraining)
	switch svc.spec.Kind {
	case listen.KindPacket:
		svc.pc.SetReadDeadline(time.Now()) // a read in progress returns
	case listen.KindServe:
		svc.shutdownOwn()
	}
}

// sweep is one step of the drain: close quiet idle HTTP/1 connections,
// move HTTP/2 connections along their GOAWAY steps. It returns when the
// next step is due (zero: none is, a change will say so).
func (svc *service) sweep(now time.Time, grace time.Duration) (next time.Time) {
	if svc.tracker == nil {
		return time.Time{}
	}
	_, next = svc.tracker.Sweep(now, grace, finWait)
	if svc.h2 != nil && svc.h2.Drain(now, svc.tracker.Handshaking()) {
		next = listen.Earliest(next, now.Add(sweepEvery))
	}
	return next
}

// open counts what keeps the drain waiting: connections and handlers.
func (svc *service) open() int {
	n := int(svc.active.Load())
	if svc.tracker != nil {
		n += svc.tracker.Len()
	}
	return n
}

// hammer closes every connection and cancels every handler context.
func (svc *service) hammer() int {
	// Cancel first, so a handler learns why before its connection dies.
	svc.baseCancel(ErrHammered)
	if svc.pc != nil {
		if svc.spec.OnHammer != nil {
			svc.spec.OnHammer() // while the socket is still open
		}
		svc.pc.Close()
		return int(svc.active.Load())
	}
	n := svc.tracker.CloseAll(ErrHammered)
	if svc.h2 != nil {
		svc.h2.Hammer()
	}
	return n
}

// certInfos describes the certificates the listener serves.
func (svc *service) certInfos() []tlsreload.Info {
	switch {
	case svc.certs != nil:
		return svc.certs.Info()
	case svc.source != nil:
		return svc.source.Certs()
	}
	return nil
}

// release frees what the service holds once it has stopped.
func (svc *service) release() {
	svc.baseCancel(context.Canceled)
	if svc.stopSrc != nil {
		svc.stopSrc()
	}
	if svc.pc != nil {
		svc.pc.Close()
	}
	if svc.spec.Kind == listen.KindServe {
		svc.ln.Close()
	}
	if svc.h2 != nil {
		svc.h2.Close()
	}
	if svc.hs != nil {
		svc.hs.Close()
	}
	if svc.tracker != nil {
		svc.tracker.Stop()
	}
}

// logWriter sends net/http's error log to the server's logger.
type logWriter struct{ log logx.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	msg := string(p)
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
	}
	w.log.Warn().Msg(msg)
	return len(p), nil
}
