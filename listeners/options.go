// Package listeners describes the kinds of listener a server runs (HTTP,
// HTTPS with HTTP/2, raw TCP), binds or inherits their sockets, exports
// them to a child process, and tracks every accepted connection so a drain
// knows what is still open.
package listeners

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
)

// Kind is what a listener serves.
type Kind int

// The kinds of listener.
const (
	KindHTTP Kind = iota // HTTP/1.1, and HTTP/2 over TLS or h2c
	KindTCP              // a raw stream handler
)

func (k Kind) String() string {
	switch k {
	case KindHTTP:
		return "http"
	case KindTCP:
		return "tcp"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// TCPHandler serves one raw connection. Its context is cancelled when the
// server starts draining; the connection is closed when it returns, and
// force-closed at hammer time.
type TCPHandler func(ctx context.Context, c net.Conn)

// CertPair names a certificate file and its key file, both PEM.
type CertPair struct{ CertFile, KeyFile string }

// Spec is the description of a listener that Options build.
type Spec struct {
	Kind Kind
	// Handler serves an HTTP listener; nil means the server's handler.
	Handler http.Handler
	// TCP serves a TCP listener.
	TCP TCPHandler
	// TLSConfig, when set, wraps the listener in TLS with a clone of it.
	TLSConfig *tls.Config
	// Certs are certificate files, reloaded in place; with several, the
	// one matching the client's server name (SNI) is served.
	Certs []CertPair
	// ClientCAFile, when set, asks for and verifies client certificates
	// against this PEM bundle, reloaded with the certificates.
	ClientCAFile string
	// H2C serves HTTP/2 without TLS (prior knowledge or Upgrade).
	H2C bool
	// Configure edits each listener's http.Server before it serves.
	Configure []func(*http.Server)

	kindSet bool
	errs    []error
}

// TLS reports whether the listener speaks TLS.
func (s *Spec) TLS() bool { return s.TLSConfig != nil || len(s.Certs) > 0 }

// Option configures a listener.
type Option interface{ apply(*Spec) }

type optionFunc func(*Spec)

func (f optionFunc) apply(s *Spec) { f(s) }

func (s *Spec) setKind(k Kind) {
	if s.kindSet && s.Kind != k {
		s.errs = append(s.errs, fmt.Errorf("listeners: both %s and %s given", s.Kind, k))
	}
	s.Kind, s.kindSet = k, true
}

// HTTP serves h over HTTP. A nil h means the server's handler, which is
// also what a listener without a kind serves.
func HTTP(h http.Handler) Option {
	return optionFunc(func(s *Spec) { s.setKind(KindHTTP); s.Handler = h })
}

// TCP serves each accepted connection with fn on a goroutine of its own.
func TCP(fn func(ctx context.Context, c net.Conn)) Option {
	return optionFunc(func(s *Spec) {
		s.setKind(KindTCP)
		if fn == nil {
			s.errs = append(s.errs, errors.New("listeners: TCP handler is nil"))
		}
		s.TCP = fn
	})
}

// TLS serves TLS with a clone of cfg. The configuration is never mutated
// once serving; to rotate certificates, set cfg.GetCertificate or use
// TLSFiles. HTTP listeners negotiate HTTP/2 by ALPN unless cfg.NextProtos
// says otherwise.
func TLS(cfg *tls.Config) Option {
	return optionFunc(func(s *Spec) {
		if cfg == nil {
			s.errs = append(s.errs, errors.New("listeners: TLS config is nil"))
			return
		}
		s.TLSConfig = cfg
	})
}

// TLSFiles serves TLS with the key pair in certFile and keyFile (PEM),
// re-read on SIGUSR1 and on Server.ReloadCerts. Give it more than once for
// several certificates chosen by server name (SNI); the first is the
// default.
func TLSFiles(certFile, keyFile string) Option {
	return optionFunc(func(s *Spec) {
		if certFile == "" || keyFile == "" {
			s.errs = append(s.errs, errors.New("listeners: TLSFiles needs a certificate file and a key file"))
			return
		}
		s.Certs = append(s.Certs, CertPair{certFile, keyFile})
	})
}

// ClientCAs asks every client for a certificate and verifies it against
// the PEM bundle in file (mutual TLS). The bundle reloads with the
// certificates.
func ClientCAs(file string) Option {
	return optionFunc(func(s *Spec) {
		if file == "" {
			s.errs = append(s.errs, errors.New("listeners: ClientCAs needs a file"))
			return
		}
		s.ClientCAFile = file
	})
}

// H2C serves HTTP/2 over cleartext as well as HTTP/1.1, for clients that
// know the server speaks it (gRPC behind a TLS-terminating proxy, say).
func H2C() Option { return optionFunc(func(s *Spec) { s.H2C = true }) }

// Configure lets fn adjust the listener's http.Server (timeouts, header
// limits, error log) before it serves. Handler, ConnState, BaseContext and
// ConnContext belong to the server and are set again after fn runs.
func Configure(fn func(*http.Server)) Option {
	return optionFunc(func(s *Spec) {
		if fn != nil {
			s.Configure = append(s.Configure, fn)
		}
	})
}

// Build applies opts and checks that they fit together.
func Build(opts ...Option) (*Spec, error) {
	s := &Spec{Kind: KindHTTP}
	for _, o := range opts {
		if o == nil {
			continue
		}
		o.apply(s)
	}
	if c := s.TLSConfig; c != nil && len(c.Certificates) == 0 && c.GetCertificate == nil && c.GetConfigForClient == nil {
		s.errs = append(s.errs, errors.New("listeners: TLS config has no certificate (set Certificates, GetCertificate or GetConfigForClient, or use TLSFiles)"))
	}
	if s.TLSConfig != nil && len(s.Certs) > 0 {
		s.errs = append(s.errs, errors.New("listeners: TLS and TLSFiles are exclusive"))
	}
	if s.ClientCAFile != "" && len(s.Certs) == 0 {
		s.errs = append(s.errs, errors.New("listeners: ClientCAs needs TLSFiles"))
	}
	if s.H2C && (s.TLS() || s.Kind != KindHTTP) {
		s.errs = append(s.errs, errors.New("listeners: H2C is for cleartext HTTP listeners"))
	}
	if s.Kind == KindTCP && (s.H2C || len(s.Configure) > 0) {
		s.errs = append(s.errs, errors.New("listeners: HTTP options on a TCP listener"))
	}
	if err := errors.Join(s.errs...); err != nil {
		return nil, err
	}
	return s, nil
}
