package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/handoff-go/handoff/internal/listen"
	"github.com/handoff-go/handoff/internal/tlsreload"
)

// alpnProtocol is the ALPN protocol of the TLS-ALPN-01 challenge (RFC
// 8737); the listener offers it so that the CA can validate through it.
const alpnProtocol = "acme-tls/1"

// manager is one listener's certificate source (listen.CertSource).
type manager struct {
	// Options, fixed once the listener is declared.
	domains    []string
	email      string
	ca         string
	roots      *x509.CertPool
	dir        string
	storage    certmagic.Storage
	renewEvery time.Duration

	started atomic.Pointer[running] // nil until Start
}

// running is what Start made.
type running struct {
	cfg    *certmagic.Config
	issuer *certmagic.ACMEIssuer
	cache  *certmagic.Cache
}

func (m *manager) Check() error {
	if len(m.domains) == 0 {
		return errors.New("acme: no domain given (acme.Domains)")
	}
	return nil
}

func (m *manager) Start(env listen.SourceEnv) (stop func(), err error) {
	if m.started.Load() != nil {
		return nil, errors.New("acme: the listener's certificates are already managed")
	}
	tmpl := certmagic.ACMEIssuer{CA: m.ca, Email: m.email, Agreed: true, TrustedRoots: m.roots}
	if m.ca == "" {
		tmpl.CA = LetsEncrypt
	}
	if err := challenges(&tmpl, env); err != nil {
		return nil, err
	}
	storage := m.storage
	if storage == nil {
		dir, err := m.storageDir()
		if err != nil {
			return nil, err
		}
		storage = &certmagic.FileStorage{Path: dir}
	}
	zl := newZap(env.Log.WithStr("component", "acme"))
	tmpl.Logger = zl

	r := &running{}
	r.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return r.cfg, nil },
		RenewCheckInterval: m.renewEvery,
		Logger:             zl,
	})
	r.cfg = certmagic.New(r.cache, certmagic.Config{Storage: storage, DefaultServerName: m.domains[0], Logger: zl})
	r.issuer = certmagic.NewACMEIssuer(r.cfg, tmpl)
	r.cfg.Issuers = []certmagic.Issuer{r.issuer}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			r.cache.Stop()
		})
	}
	// What storage has is served from the first handshake on (a restart's
	// process obtains nothing); what it lacks is obtained in the
	// background, and what is due is renewed in the background.
	var missing []string
	for _, d := range m.domains {
		if _, err := r.cfg.CacheManagedCertificate(ctx, d); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				stop()
				return nil, fmt.Errorf("acme: loading the stored certificate of %s: %w", d, err)
			}
			missing = append(missing, d)
		}
	}
	if err := r.cfg.ManageAsync(ctx, missing); err != nil {
		stop()
		return nil, fmt.Errorf("acme: %w", err)
	}
	if len(missing) < len(m.domains) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.cache.RenewManagedCertificates(ctx); err != nil && ctx.Err() == nil {
				env.Log.Error().Err(err).Msg("acme: renewing stored certificates")
			}
		}()
	}
	m.started.Store(r)
	return stop, nil
}

// storageDir returns the storage directory, made if need be and checked
// for writing.
func (m *manager) storageDir() (string, error) {
	dir := m.dir
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("acme: no storage directory given and no user cache directory: %w", err)
		}
		dir = filepath.Join(cache, "handoff", "acme")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("acme: storage directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return "", fmt.Errorf("acme: storage directory %s cannot be written: %w", dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	return dir, nil
}

// challenges points the issuer's challenge solvers at the listeners that
// answer them. certmagic's solvers first try to bind the challenge's
// address; finding it taken (by these listeners) they leave the answering
// to whatever holds it: the listener for TLS-ALPN-01 (GetCertificate),
// the redirecting listener for HTTP-01 (HandleHTTP).
func challenges(tmpl *certmagic.ACMEIssuer, env listen.SourceEnv) error {
	tlsAddr, ok := env.Addr.(*net.TCPAddr)
	if ok {
		tmpl.AltTLSALPNPort = tlsAddr.Port
		if !tlsAddr.IP.IsUnspecified() {
			tmpl.ListenHost = tlsAddr.IP.String()
		}
	} else {
		tmpl.DisableTLSALPNChallenge = true
	}
	httpAddr, ok := env.HTTPAddr.(*net.TCPAddr)
	switch {
	case ok && (tmpl.ListenHost == "" || httpAddr.IP.String() == tmpl.ListenHost || httpAddr.IP.IsUnspecified()):
		tmpl.AltHTTPPort = httpAddr.Port
	case ok:
		env.Log.Warn().Str("https", env.Addr.String()).Str("http", env.HTTPAddr.String()).
			Msg("acme: the HTTP and HTTPS listeners are on different addresses; HTTP-01 is not used")
		tmpl.DisableHTTPChallenge = true
	default:
		tmpl.DisableHTTPChallenge = true
	}
	if tmpl.DisableHTTPChallenge && tmpl.DisableTLSALPNChallenge {
		return fmt.Errorf("acme: the listener on %s can answer no challenge: TLS-ALPN-01 needs a TCP listener, HTTP-01 a plain HTTP listener with acme.Redirect", env.Addr)
	}
	return nil
}

func (m *manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	r := m.started.Load()
	if r == nil {
		return nil, errors.New("acme: not started")
	}
	return r.cfg.GetCertificate(hello)
}

func (m *manager) NextProtos() []string { return []string{alpnProtocol} }

func (m *manager) HandleHTTP(w http.ResponseWriter, req *http.Request) bool {
	r := m.started.Load()
	return r != nil && r.issuer.HandleHTTPChallenge(w, req)
}

func (m *manager) Certs() []tlsreload.Info {
	r := m.started.Load()
	if r == nil {
		return nil
	}
	var out []tlsreload.Info
	seen := map[string]bool{}
	for _, d := range m.domains {
		for _, c := range r.cache.AllMatchingCertificates(d) {
			if c.Leaf == nil {
				continue
			}
			in := tlsreload.Describe("", c.Leaf)
			if !seen[in.Serial] {
				seen[in.Serial] = true
				out = append(out, in)
			}
		}
	}
	return out
}
