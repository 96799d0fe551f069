package listen

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"

	"github.com/handoff-go/handoff/internal/logx"
	"github.com/handoff-go/handoff/internal/tlsreload"
)

// CertSource gives a TLS listener its certificates from somewhere other
// than files the server reads itself: an ACME CA (package acme). The server
// only knows this interface, so programs that use no source do not link
// one.
type CertSource interface {
	// Check reports options that do not fit together; Build calls it.
	Check() error
	// Start readies the source in a process that is about to serve the
	// listener: it loads what it has stored and, where it has nothing,
	// starts to obtain it in the background. An error means the listener
	// cannot work at all (the process does not serve). stop ends what
	// Start began.
	Start(env SourceEnv) (stop func(), err error)
	// GetCertificate answers a handshake (tls.Config.GetCertificate).
	GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error)
	// NextProtos are ALPN protocols the listener must also offer.
	NextProtos() []string
	// HandleHTTP answers r when it is the source's business (an ACME
	// HTTP-01 challenge) and reports whether it did.
	HandleHTTP(w http.ResponseWriter, r *http.Request) bool
	// Certs describes the certificates the listener serves now.
	Certs() []tlsreload.Info
}

// SourceEnv is what a certificate source learns when it starts.
type SourceEnv struct {
	Log logx.Logger
	// Addr is the listener's own address (where TLS-ALPN-01 is answered).
	Addr net.Addr
	// HTTPAddr is the address of the plain HTTP listener that redirects
	// to this one and answers its HTTP-01 challenges, or nil.
	HTTPAddr net.Addr
}

// Companion serves a second socket beside an HTTPS listener: a UDP socket
// on the same address (HTTP/3, package http3). It is declared, bound,
// inherited and handed on as a listener of its own, named
// "<listener>-<Suffix>", of the packet kind; Serve runs like a Packet
// handler (ctx is cancelled when the drain starts; the socket is closed
// at hammer time).
type Companion struct {
	Suffix string
	// AltSvc, when set, is the ALPN protocol the HTTPS listener advertises
	// in an Alt-Svc header for the companion's port ("h3").
	AltSvc string
	Serve  func(ctx context.Context, pc net.PacketConn, env CompanionEnv)
}

// CompanionEnv is what a companion learns from the server when it serves.
type CompanionEnv struct {
	Log logx.Logger
	// TLS is the HTTPS listener's configuration (its certificates, reloads
	// included); Handler its handler.
	TLS     *tls.Config
	Handler http.Handler
	// Generation is this process's restart generation; Family a secret
	// shared by every process of the server since it was started by hand
	// (handed on to each new process).
	Generation int
	Family     []byte
	// OnHammer registers fn, called at hammer time before the socket is
	// closed (to close connections while their peers can still be told);
	// fn must return soon.
	OnHammer func(fn func())
}
