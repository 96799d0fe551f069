// Package listen is the listener plumbing of the server: what a listener
// is (Spec, built from the public listeners options), binding, inheriting
// and exporting sockets, and tracking every accepted connection so a drain
// knows what is still open.
package listen

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
	KindHTTP   Kind = iota // HTTP/1.1, and HTTP/2 over TLS or cleartext
	KindTCP                // a raw stream handler, one call per connection
	KindPacket             // a datagram handler, one call per process
	KindServe              // any server that serves a net.Listener
)

func (k Kind) String() string {
	switch k {
	case KindHTTP:
		return "http"
	case KindTCP:
		return "tcp"
	case KindPacket:
		return "packet"
	case KindServe:
		return "serve"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// CertPair names a certificate file and its key file, both PEM.
type CertPair struct{ CertFile, KeyFile string }

// Spec is the description of a listener that the listeners options build.
type Spec struct {
	Kind Kind
	// Handler serves an HTTP listener; nil means the server's handler.
	Handler http.Handler
	// TCP serves each connection of a TCP listener.
	TCP func(ctx context.Context, c net.Conn)
	// Packet serves a UDP socket.
	Packet func(ctx context.Context, pc net.PacketConn)
	// OnHammer, for a packet listener, is called at hammer time before
	// its socket is closed, and must return soon.
	OnHammer func()
	// Serve and Shutdown run a server of the program's own on the
	// listener: Serve until Shutdown, which a drain calls with a context
	// that hammer time cancels.
	Serve    func(net.Listener) error
	Shutdown func(context.Context) error
	// File is applied to a unix socket's file when it is bound.
	File FileOptions
	// TLSConfig, when set, wraps the listener in TLS with a clone of it.
	TLSConfig *tls.Config
	// Certs are certificate files, reloaded in place; with several, the
	// one matching the client's server name (SNI) is served.
	Certs []CertPair
	// ClientCAFile, when set, asks for and verifies client certificates
	// against this PEM bundle, reloaded with the certificates.
	ClientCAFile string
	// Source, when set, provides the listener's certificates.
	Source CertSource
	// Companion, when set, serves a UDP socket beside this HTTPS listener.
	Companion *Companion
	// Redirect names the TLS listener that this plain HTTP listener
	// redirects every request to, once the certificate sources of the
	// server have had a look at it (ACME HTTP-01 challenges).
	Redirect string
	// H2C serves HTTP/2 without TLS to clients that know it (prior
	// knowledge).
	H2C bool
	// Configure edits each listener's http.Server before it serves.
	Configure []func(*http.Server)

	kindSet bool
	errs    []error
}

// TLS reports whether the listener speaks TLS.
func (s *Spec) TLS() bool { return s.TLSConfig != nil || len(s.Certs) > 0 || s.Source != nil }

// SetKind sets the kind, noting a conflict with one set before.
func (s *Spec) SetKind(k Kind) {
	if s.kindSet && s.Kind != k {
		s.Fail(fmt.Errorf("listeners: both %s and %s given", s.Kind, k))
	}
	s.Kind, s.kindSet = k, true
}

// Fail records an error that Build returns.
func (s *Spec) Fail(err error) { s.errs = append(s.errs, err) }

// Check reports whether the kind of s fits the network of a.
func (s *Spec) Check(a Addr) error {
	switch {
	case s.Kind == KindPacket && a.Network != "udp":
		return fmt.Errorf("listeners.Packet needs a udp: address, not %s", a)
	case s.Kind != KindPacket && a.Network == "udp":
		return fmt.Errorf("the udp: address %s needs listeners.Packet", a)
	case (s.File.Mode != 0 || s.File.Owner) && (a.Network != "unix" || a.Abstract()):
		return fmt.Errorf("FileMode and FileOwner are for unix socket paths, not %s", a)
	}
	return nil
}

// Build applies opts and checks that they fit together.
func Build[O ~func(*Spec)](opts ...O) (*Spec, error) {
	s := &Spec{Kind: KindHTTP}
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	if c := s.TLSConfig; c != nil && len(c.Certificates) == 0 && c.GetCertificate == nil && c.GetConfigForClient == nil {
		s.Fail(errors.New("listeners: TLS config has no certificate (set Certificates, GetCertificate or GetConfigForClient, or use TLSFiles)"))
	}
	if s.TLSConfig != nil && len(s.Certs) > 0 {
		s.Fail(errors.New("listeners: TLS and TLSFiles are exclusive"))
	}
	if s.Source != nil {
		if s.TLSConfig != nil || len(s.Certs) > 0 {
			s.Fail(errors.New("listeners: certificates from ACME and from TLS or TLSFiles are exclusive"))
		}
		if err := s.Source.Check(); err != nil {
			s.Fail(err)
		}
	}
	if s.Companion != nil && (s.Kind != KindHTTP || !s.TLS()) {
		s.Fail(errors.New("listeners: HTTP/3 needs an HTTPS listener (HTTP with TLS, TLSFiles or ACME)"))
	}
	if s.Redirect != "" && (s.Kind != KindHTTP || s.TLS() || s.H2C || s.Handler != nil) {
		s.Fail(errors.New("listeners: a redirecting listener is plain HTTP and serves nothing else (no HTTP handler, TLS or H2C)"))
	}
	if s.ClientCAFile != "" && len(s.Certs) == 0 {
		s.Fail(errors.New("listeners: ClientCAs needs TLSFiles"))
	}
	if s.H2C && (s.TLS() || s.Kind != KindHTTP) {
		s.Fail(errors.New("listeners: H2C is for cleartext HTTP listeners"))
	}
	if s.Kind != KindHTTP && (s.H2C || len(s.Configure) > 0) {
		s.Fail(fmt.Errorf("listeners: HTTP options on a %s listener", s.Kind))
	}
	if s.Kind == KindPacket && s.TLS() {
		s.Fail(errors.New("listeners: TLS on a packet listener (UDP)"))
	}
	if s.Kind == KindServe && s.TLS() {
		s.Fail(errors.New("listeners: TLS with Serve: give your server its own TLS configuration"))
	}
	if err := errors.Join(s.errs...); err != nil {
		return nil, err
	}
	return s, nil
}
