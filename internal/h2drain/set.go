package h2drain

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// SoftWait bounds the wait for a client to acknowledge the soft GOAWAY's
// PING before the final GOAWAY is sent anyway.
const SoftWait = time.Second

// Config is what a Set takes from the listener's http.Server.
type Config struct {
	// Base lends its timeouts, limits, HTTP/2 settings, error log,
	// ConnState, BaseContext and ConnContext to the inner server.
	Base *http.Server
	// Handler serves every request.
	Handler http.Handler
	// Track is told of each connection that becomes HTTP/2, with the
	// connection as the listener accepted it.
	Track func(net.Conn)
}

// Set serves the HTTP/2 connections of one listener and drains them.
type Set struct {
	srv   *http.Server
	ln    *chanListener
	track func(net.Conn)

	hammerCtx context.Context
	hammer    context.CancelFunc

	mu      sync.Mutex
	conns   map[*conn]struct{}
	final   bool           // the inner server's Shutdown has started
	workers sync.WaitGroup // soft GOAWAY writers and the Shutdown call
}

type tlsStateKey struct{}

// New returns a Set serving cfg.Handler over HTTP/2.
func New(cfg Config) *Set {
	s := &Set{ln: newChanListener(), conns: map[*conn]struct{}{}, track: cfg.Track}
	s.hammerCtx, s.hammer = context.WithCancel(context.Background())
	b := cfg.Base
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	h := cfg.Handler
	s.srv = &http.Server{
		Protocols:         &protos,
		ReadTimeout:       b.ReadTimeout,
		ReadHeaderTimeout: b.ReadHeaderTimeout,
		WriteTimeout:      b.WriteTimeout,
		IdleTimeout:       b.IdleTimeout,
		MaxHeaderBytes:    b.MaxHeaderBytes,
		HTTP2:             b.HTTP2,
		ErrorLog:          b.ErrorLog,
		ConnState:         b.ConnState,
		BaseContext:       b.BaseContext,
		ConnContext: func(ctx context.Context, nc net.Conn) context.Context {
			if c, ok := nc.(*conn); ok && c.tls != nil {
				ctx = context.WithValue(ctx, tlsStateKey{}, c.tls)
			}
			if b.ConnContext != nil {
				ctx = b.ConnContext(ctx, nc)
			}
			return ctx
		},
		// The inner server sees plaintext; the request still says which
		// TLS connection it came on.
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.TLS == nil {
				r.TLS, _ = r.Context().Value(tlsStateKey{}).(*tls.ConnectionState)
			}
			h.ServeHTTP(w, r)
		}),
	}
	return s
}

// TLSNextProto is the map to give the listener's http.Server: HTTP/2
// negotiated by ALPN, and cleartext HTTP/2 with prior knowledge (which
// http.Server.Protocols enables), both handed to the inner server.
func (s *Set) TLSNextProto() map[string]func(*http.Server, *tls.Conn, http.Handler) {
	return map[string]func(*http.Server, *tls.Conn, http.Handler){
		"h2": func(_ *http.Server, tc *tls.Conn, _ http.Handler) {
			st := tc.ConnectionState()
			s.serve(newConn(tc, &st, nil))
		},
		"unencrypted_http2": func(_ *http.Server, tc *tls.Conn, _ http.Handler) {
			// net/http hands the cleartext connection over inside a
			// *tls.Conn that is never used as one, having read the
			// client preface from it.
			u, ok := tc.NetConn().(interface{ UnencryptedNetConn() net.Conn })
			if !ok {
				return
			}
			s.serve(newConn(u.UnencryptedNetConn(), nil, []byte(Preface)))
		},
	}
}

// serve hands c to the inner server and returns once c is closed: the
// listener's server closes the connection when this returns.
func (s *Set) serve(c *conn) {
	s.mu.Lock()
	if s.final {
		s.mu.Unlock()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	c.release = func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}
	if s.track != nil {
		s.track(c.Conn)
	}
	if !s.ln.deliver(c) {
		c.Close()
		return
	}
	<-c.closed
}

// Serve runs the inner server until Shutdown or Close.
func (s *Set) Serve() error {
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Drain moves the drain along; the drain calls it at every sweep, and it
// never blocks. Each connection gets the soft GOAWAY once; when all have
// acknowledged it (or SoftWait has passed for each), and no connection of
// the listener is still in its TLS handshake (handshaking), the inner
// server's Shutdown sends the final GOAWAY and closes every connection
// once its streams are done. It reports whether it is waiting for that
// moment, so is to be called again soon; once Shutdown runs, the
// connections' closing is what moves the drain.
func (s *Set) Drain(now time.Time, handshaking bool) (waiting bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.final {
		return false
	}
	ready := !handshaking
	for c := range s.conns {
		if c.softAt == 0 {
			c.softAt = now.UnixNano()
			s.workers.Add(1)
			go func() {
				defer s.workers.Done()
				c.softGoAway()
			}()
			ready = false
			continue
		}
		if !c.acked.Load() && now.UnixNano()-c.softAt < int64(SoftWait) {
			ready = false
		}
	}
	if !ready {
		return true
	}
	s.final = true
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		s.srv.Shutdown(s.hammerCtx) // returns at hammer time at the latest
	}()
	return false
}

// Hammer closes every HTTP/2 connection at once and returns how many.
func (s *Set) Hammer() int {
	s.mu.Lock()
	s.final = true
	open := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		open = append(open, c)
	}
	s.mu.Unlock()
	s.hammer()
	for _, c := range open {
		c.Close()
	}
	s.srv.Close()
	return len(open)
}

// Close stops the inner server and waits for every goroutine of the Set.
// Open connections are closed.
func (s *Set) Close() {
	s.Hammer()
	s.workers.Wait()
}

// chanListener is the inner server's listener: connections handed over
// by the listener's server.
type chanListener struct {
	ch        chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "http2" }
