// Package listeners holds the kinds of listener a server runs, given as
// options to server.Listen: HTTP (with HTTP/2 over TLS, or cleartext with
// H2C), raw TCP, and the TLS that may wrap either.
//
//	srv.Listen("api", ":8443", listeners.HTTP(api), listeners.TLSFiles("api.crt", "api.key")).
//		Listen("echo", ":7000", listeners.TCP(echo))
//
// A listener without a kind serves the server's handler over HTTP. Options
// that do not fit together (two kinds, H2C over TLS, ClientCAs without
// TLSFiles, …) are reported by Serve.
package listeners

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"

	"github.com/handoff-go/handoff/internal/listen"
)

// Option configures a listener.
type Option func(*listen.Spec)

// HTTP serves h over HTTP/1.1, and HTTP/2 where TLS (or H2C) allows it. A
// nil h means the server's handler, which is also what a listener without
// a kind serves.
func HTTP(h http.Handler) Option {
	return func(s *listen.Spec) { s.SetKind(listen.KindHTTP); s.Handler = h }
}

// TCP serves each accepted connection with fn on a goroutine of its own.
// The connection is closed when fn returns. fn's context is cancelled
// (context.Cause: server.ErrDraining) when the server starts to drain: fn
// should then finish what it is doing and return. At hammer time the
// connection is closed by force.
func TCP(fn func(ctx context.Context, c net.Conn)) Option {
	return func(s *listen.Spec) {
		s.SetKind(listen.KindTCP)
		if fn == nil {
			s.Fail(errors.New("listeners: TCP handler is nil"))
		}
		s.TCP = fn
	}
}

// TLS serves TLS with a clone of cfg, which must provide a certificate
// (Certificates, GetCertificate or GetConfigForClient). The configuration
// is never mutated once serving; to rotate certificates, set
// cfg.GetCertificate or use TLSFiles. HTTP listeners negotiate HTTP/2 by
// ALPN unless cfg.NextProtos says otherwise.
func TLS(cfg *tls.Config) Option {
	return func(s *listen.Spec) {
		if cfg == nil {
			s.Fail(errors.New("listeners: TLS config is nil"))
			return
		}
		s.TLSConfig = cfg
	}
}

// TLSFiles serves TLS with the key pair in certFile and keyFile (PEM),
// re-read on SIGUSR1 and on Server.ReloadCerts. Give it more than once for
// several certificates chosen by server name (SNI); the first is the
// default. The files must be regular files (symlinks to them are fine).
func TLSFiles(certFile, keyFile string) Option {
	return func(s *listen.Spec) {
		if certFile == "" || keyFile == "" {
			s.Fail(errors.New("listeners: TLSFiles needs a certificate file and a key file"))
			return
		}
		s.Certs = append(s.Certs, listen.CertPair{CertFile: certFile, KeyFile: keyFile})
	}
}

// ClientCAs asks every client for a certificate and verifies it against
// the PEM bundle in file (mutual TLS). The bundle reloads with the
// certificates.
func ClientCAs(file string) Option {
	return func(s *listen.Spec) {
		if file == "" {
			s.Fail(errors.New("listeners: ClientCAs needs a file"))
			return
		}
		s.ClientCAFile = file
	}
}

// H2C serves HTTP/2 over cleartext to clients that know the server speaks
// it (prior knowledge: gRPC behind a TLS-terminating proxy, say), as well
// as HTTP/1.1. The HTTP/1.1 Upgrade to h2c is not offered.
func H2C() Option { return func(s *listen.Spec) { s.H2C = true } }

// Configure lets fn adjust the listener's http.Server (timeouts, header
// limits, error log, Protocols, HTTP2) before it serves. Handler,
// ConnState (fn's own hook is still called), BaseContext and TLSNextProto
// belong to the server and are set after fn runs; ConnContext is kept.
func Configure(fn func(*http.Server)) Option {
	return func(s *listen.Spec) {
		if fn != nil {
			s.Configure = append(s.Configure, fn)
		}
	}
}
