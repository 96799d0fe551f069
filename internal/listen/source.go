package listen

import (
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
