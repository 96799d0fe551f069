// Package acme gives a TLS listener certificates from an ACME CA (Let's
// Encrypt by default), obtained, stored and renewed by
// github.com/caddyserver/certmagic:
//
//	srv.Listen("https", ":443", listeners.HTTP(h),
//		acme.Domains("example.com", "www.example.com"), acme.Email("ops@example.com")).
//		Listen("http", ":80", acme.Redirect("https"))
//
// The listener serves at once. A certificate that is in storage is loaded
// before the process serves; one that is not is obtained in the
// background, and until it arrives handshakes for its name fail. The
// TLS-ALPN-01 challenge is answered by the listener itself; HTTP-01 by a
// plain HTTP listener given Redirect, which sends every other request to
// HTTPS. A CA validates on ports 443 and 80: a listener elsewhere needs
// those ports forwarded to it.
//
// Certificates are renewed in place, a third of their lifetime before they
// expire or when the CA's renewal information (ARI) says so, without a
// restart and without a failed handshake. A restart's new process loads
// them from storage and obtains nothing. Instances that share a storage
// directory (or a certmagic.Storage) obtain and renew each certificate
// once: the first takes a lock in the storage, the others wait for it and
// load what it stored.
//
// Problems that cannot go away by themselves (no domain, a malformed one,
// a CA URL that is not https, a storage directory that cannot be written)
// are errors from Serve. Those that may (a CA that cannot be reached or
// refuses an order) are logged and retried with a growing delay, while the
// listener serves what it has.
package acme

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/handoff-go/handoff/internal/listen"
	"github.com/handoff-go/handoff/listeners"
)

// Directory URLs of Let's Encrypt's CAs.
const (
	LetsEncrypt        = certmagic.LetsEncryptProductionCA
	LetsEncryptStaging = certmagic.LetsEncryptStagingCA
)

// Domains makes the listener serve certificates for names (DNS names, no
// wildcards: those need the DNS-01 challenge) from an ACME CA. The first
// name is served to clients that send no server name.
func Domains(names ...string) listeners.Option {
	return with(func(m *manager) error {
		if len(names) == 0 {
			return errors.New("acme: Domains needs at least one name")
		}
		for _, n := range names {
			if err := checkName(n); err != nil {
				return err
			}
			m.domains = append(m.domains, strings.ToLower(n))
		}
		return nil
	})
}

// Email is the contact address of the ACME account: the CA writes to it
// about certificates that are about to expire or were revoked.
func Email(addr string) listeners.Option {
	return with(func(m *manager) error {
		if i := strings.IndexByte(addr, '@'); i <= 0 || i == len(addr)-1 || strings.ContainsAny(addr, " \t\r\n<>") {
			return fmt.Errorf("acme: Email(%q): not an email address", addr)
		}
		m.email = addr
		return nil
	})
}

// CA sets the directory URL of the ACME CA (https). The default is
// LetsEncrypt.
func CA(directoryURL string) listeners.Option {
	return with(func(m *manager) error {
		u, err := url.Parse(directoryURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("acme: CA(%q): want an https:// directory URL", directoryURL)
		}
		m.ca = directoryURL
		return nil
	})
}

// Staging uses Let's Encrypt's staging CA: no rate limits to speak of, but
// certificates that no browser trusts. For trying a deployment out.
func Staging() listeners.Option { return CA(LetsEncryptStaging) }

// TrustRoots adds roots that the ACME client trusts when it talks to the CA
// (a private CA whose HTTPS certificate is not publicly trusted), besides
// the system's.
func TrustRoots(pool *x509.CertPool) listeners.Option {
	return with(func(m *manager) error {
		if pool == nil {
			return errors.New("acme: TrustRoots: nil pool")
		}
		m.roots = pool
		return nil
	})
}

// StorageDir keeps accounts, keys and certificates under dir, created
// (mode 0700) if need be. The default is "handoff/acme" in the user's cache
// directory (os.UserCacheDir). Processes sharing the directory share the
// certificates and take turns to obtain them.
func StorageDir(dir string) listeners.Option {
	return with(func(m *manager) error {
		if dir == "" {
			return errors.New("acme: StorageDir: empty path")
		}
		m.dir = dir
		return nil
	})
}

// Storage keeps accounts, keys and certificates in s (a database or object
// store that several machines share, say), instead of a directory.
func Storage(s certmagic.Storage) listeners.Option {
	return with(func(m *manager) error {
		if s == nil {
			return errors.New("acme: Storage: nil storage")
		}
		m.storage = s
		return nil
	})
}

// RenewCheck sets how often certificates are checked for renewal (default
// 10 minutes).
func RenewCheck(every time.Duration) listeners.Option {
	return with(func(m *manager) error {
		if every <= 0 {
			return fmt.Errorf("acme: RenewCheck(%v): want a positive interval", every)
		}
		m.renewEvery = every
		return nil
	})
}

// Redirect makes a plain HTTP listener (port 80) answer the ACME HTTP-01
// challenges of the HTTPS listener named to, and redirect every other
// request to the same host and path on it (308 Permanent Redirect, to
// to's port unless it is 443). Without such a listener, certificates are
// obtained with TLS-ALPN-01 alone.
func Redirect(to string) listeners.Option {
	return func(s *listen.Spec) {
		if to == "" {
			s.Fail(errors.New("acme: Redirect needs the name of an HTTPS listener"))
			return
		}
		s.Redirect = to
	}
}

// with applies fn to the listener's manager, made on first use.
func with(fn func(*manager) error) listeners.Option {
	return func(s *listen.Spec) {
		m, ok := s.Source.(*manager)
		if s.Source == nil {
			m = &manager{}
			s.Source = m
		} else if !ok {
			s.Fail(fmt.Errorf("acme: the listener already has a certificate source (%T)", s.Source))
			return
		}
		if err := fn(m); err != nil {
			s.Fail(err)
		}
	}
}

// checkName accepts a DNS name a CA can validate by HTTP-01 or
// TLS-ALPN-01, or an IP address.
func checkName(n string) error {
	bad := func(why string) error { return fmt.Errorf("acme: domain %q: %s", n, why) }
	if net.ParseIP(n) != nil {
		return nil
	}
	switch {
	case n == "":
		return bad("empty")
	case strings.HasPrefix(n, "*."):
		return bad("wildcards need the DNS-01 challenge, which this package does not do")
	case len(n) > 253:
		return bad("longer than 253 characters")
	case strings.HasSuffix(n, "."):
		return bad("ends with a dot")
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 {
			return bad("empty or over-long label")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return bad("a label starts or ends with '-'")
		}
		for i := 0; i < len(label); i++ {
			c := label[i] | 0x20
			if !(c >= 'a' && c <= 'z' || label[i] >= '0' && label[i] <= '9' || label[i] == '-') {
				return bad(fmt.Sprintf("character %q is not allowed in a DNS name", label[i]))
			}
		}
	}
	return nil
}
