// Package listeners holds the kinds of listener a server runs, given as
// options to server.Listen: HTTP (with HTTP/2 over TLS, or cleartext with
// H2C), raw TCP, UDP (Packet), any server of your own that serves a
// net.Listener (Serve: gRPC, say), and the TLS that may wrap the stream
// kinds. The address says the network: "host:port" (TCP), "udp:host:port",
// "unix:/path/to.sock" or "unix:@name" (Linux's abstract namespace).
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
	"fmt"
	"net"
	"net/http"
	"os"

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

// Packet serves a UDP socket (an address "udp:host:port") with fn, called
// once, on a goroutine of its own, with the socket; fn reads and answers
// datagrams until its context is done. A new process reads the same
// socket: when it is ready, this process's ctx is cancelled (context.Cause:
// server.ErrDraining) and a read deadline of now is set on pc, so that a
// read in progress returns; fn must then return. Datagrams still queued in
// the socket are read by the new process. At hammer time pc is closed.
func Packet(fn func(ctx context.Context, pc net.PacketConn)) Option {
	return func(s *listen.Spec) {
		s.SetKind(listen.KindPacket)
		if fn == nil {
			s.Fail(errors.New("listeners: Packet handler is nil"))
		}
		s.Packet = fn
	}
}

// Serve runs a server of the program's own on the listener (TCP or unix):
// gRPC, or anything else that serves a net.Listener. serve is called with
// the listener and must block until shutdown makes it return; the process
// reports that it is ready only once serve has started to accept. On a
// drain, shutdown is called with a context that hammer time cancels: it
// stops accepting, lets what is in flight finish, and returns; when its
// context is done it must stop at once (for gRPC: GracefulStop, and Stop
// when ctx is done). Connections still open at hammer time are closed.
func Serve(serve func(net.Listener) error, shutdown func(ctx context.Context) error) Option {
	return func(s *listen.Spec) {
		s.SetKind(listen.KindServe)
		if serve == nil || shutdown == nil {
			s.Fail(errors.New("listeners: Serve needs a serve and a shutdown function"))
		}
		s.Serve, s.Shutdown = serve, shutdown
	}
}

// FileMode sets the permissions of a unix socket's file once it is bound
// (connecting to a unix socket needs write permission on it).
func FileMode(mode os.FileMode) Option {
	return func(s *listen.Spec) {
		if mode&^os.ModePerm != 0 || mode == 0 {
			s.Fail(fmt.Errorf("listeners: FileMode(%v): want permission bits only", mode))
			return
		}
		s.File.Mode = mode
	}
}

// FileOwner sets the owner and group of a unix socket's file once it is
// bound (-1 leaves one of them as it is).
func FileOwner(uid, gid int) Option {
	return func(s *listen.Spec) { s.File.Owner, s.File.UID, s.File.GID = true, uid, gid }
}

// H2C serves HTTP/2 over cleartext to clients that know the server speaks
// it (prior knowledge: gRPC behind a TLS-terminating proxy, say), as well
// as HTTP/1.1. The HTTP/1.1 Upgrade to h2c is not offered.
func H2C() Option { return func(s *listen.Spec) { s.H2C = true } }

// Configure lets fn adjust the listener's http.Server (timeouts, header
// limits, error log, Protocols, HTTP2) before it serves. Handler,
// ConnState (fn's own hook is still called), BaseContext and TLSNextProto
// belong to the server and are set after fn runs; ConnContext is kept.
// Idle and header timeouts of 5 s or more are then enforced by the
// listener's connection tracker, not by the http.Server (see
// server.DefaultIdleTimeout).
func Configure(fn func(*http.Server)) Option {
	return func(s *listen.Spec) {
		if fn != nil {
			s.Configure = append(s.Configure, fn)
		}
	}
}
