// Package tlsreload holds the certificates of a TLS listener and replaces
// them in place, without restarting anything.
//
// A Reloader reads one or more key pairs (PEM files) and, optionally, a
// bundle of client CAs. Each read is checked in full before it is used:
// the files parse, the key matches the certificate, the leaf is valid now,
// and the chain is in order (each certificate issued by the next). Then
// the new set is published with one atomic store. Any failure leaves the
// set in use untouched and returns an error that names the file and the
// reason, so a half-written file during a rotation is only a failed reload.
//
// Serving never mutates a tls.Config: Config returns a configuration whose
// GetConfigForClient hands each handshake the immutable configuration of
// the current set, so a handshake sees one whole set, old or new. With
// several pairs, crypto/tls chooses by server name (SNI); the first pair is
// the default.
package tlsreload

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Reasons a key pair is refused, wrapped with the file name.
var (
	ErrNoPEM         = errors.New("no PEM data")
	ErrTruncated     = errors.New("truncated or malformed PEM")
	ErrSwapped       = errors.New("certificate and key files are swapped")
	ErrNoCertificate = errors.New("no certificate in file")
	ErrNoKey         = errors.New("no private key in file")
	ErrKeyMismatch   = errors.New("private key does not match the certificate")
	ErrExpired       = errors.New("certificate has expired")
	ErrNotYetValid   = errors.New("certificate is not valid yet")
	ErrChainOrder    = errors.New("certificate chain is out of order")
	ErrNotRegular    = errors.New("not a regular file")
	ErrTooLarge      = errors.New("file too large")
)

// Pair names a certificate (chain) file and its key file.
type Pair struct{ CertFile, KeyFile string }

// Info describes a loaded certificate, for logs and stats.
type Info struct {
	CertFile  string
	Subject   string
	DNSNames  []string
	Serial    string
	NotBefore time.Time
	NotAfter  time.Time
}

type set struct {
	config *tls.Config // immutable once published
	info   []Info
}

// Reloader holds the current certificate set of one listener.
type Reloader struct {
	pairs    []Pair
	clientCA string
	base     *tls.Config
	now      func() time.Time

	mu     sync.Mutex // serializes Reload
	cur    atomic.Pointer[set]
	loaded []fileID // what the set in use was read from; guarded by mu
}

// New loads pairs (and, if clientCAFile is not empty, the client CA
// bundle, which turns on client certificate verification) and returns a
// Reloader serving them. base, which may be nil, is cloned for every set:
// versions, ciphers, NextProtos and the like come from it.
func New(base *tls.Config, pairs []Pair, clientCAFile string) (*Reloader, error) {
	return newReloader(base, pairs, clientCAFile, time.Now)
}

func newReloader(base *tls.Config, pairs []Pair, clientCAFile string, now func() time.Time) (*Reloader, error) {
	if len(pairs) == 0 {
		return nil, errors.New("tlsreload: no key pair")
	}
	if base == nil {
		base = &tls.Config{}
	}
	r := &Reloader{
		pairs:    append([]Pair(nil), pairs...),
		clientCA: clientCAFile,
		base:     base.Clone(),
		now:      now,
	}
	if _, err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads every file again and, if all of them pass the checks,
// serves the new set from the next handshake on. On error the set in use
// is kept. It returns the description of the set now served.
func (r *Reloader) Reload() ([]Info, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Taken before reading: a change while the files are read shows later.
	before := state(r.files())
	now := r.now()
	cfg := r.base.Clone()
	cfg.Certificates = nil
	cfg.GetCertificate = nil
	cfg.GetConfigForClient = nil
	info := make([]Info, 0, len(r.pairs))
	for _, p := range r.pairs {
		cert, err := LoadPair(p.CertFile, p.KeyFile, now)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = append(cfg.Certificates, cert)
		info = append(info, Describe(p.CertFile, cert.Leaf))
	}
	if r.clientCA != "" {
		pool, err := loadPool(r.clientCA)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	r.cur.Store(&set{config: cfg, info: info})
	r.loaded = before
	return info, nil
}

// Info describes the set now served.
func (r *Reloader) Info() []Info { return append([]Info(nil), r.cur.Load().info...) }

// Config returns a configuration for a listener: a clone of base whose
// GetConfigForClient serves the current set to each handshake.
func (r *Reloader) Config() *tls.Config {
	cfg := r.base.Clone()
	cfg.GetConfigForClient = r.getConfigForClient
	return cfg
}

func (r *Reloader) getConfigForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	return r.cur.Load().config, nil
}

// GetCertificate returns the certificate of the current set that fits
// hello, for a tls.Config built elsewhere.
func (r *Reloader) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	certs := r.cur.Load().config.Certificates
	for i := range certs {
		if hello.SupportsCertificate(&certs[i]) == nil {
			return &certs[i], nil
		}
	}
	return &certs[0], nil
}

// Describe describes leaf, loaded from file (if any).
func Describe(file string, leaf *x509.Certificate) Info {
	return Info{
		CertFile:  file,
		Subject:   leaf.Subject.String(),
		DNSNames:  append([]string(nil), leaf.DNSNames...),
		Serial:    serialHex(leaf.SerialNumber),
		NotBefore: leaf.NotBefore,
		NotAfter:  leaf.NotAfter,
	}
}

func serialHex(n *big.Int) string {
	if n == nil {
		return ""
	}
	return fmt.Sprintf("%X", n)
}

// LoadPair reads and checks one key pair at time now: see the package
// documentation for the checks. Errors name the file at fault.
func LoadPair(certFile, keyFile string, now time.Time) (tls.Certificate, error) {
	certPEM, err := readFile(certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := readFile(keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	certBlocks, err := decodeAll(certFile, certPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyBlocks, err := decodeAll(keyFile, keyPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	if hasType(certBlocks, isKeyType) && hasType(keyBlocks, isCertType) {
		return tls.Certificate{}, fmt.Errorf("tlsreload: %s and %s: %w", certFile, keyFile, ErrSwapped)
	}

	var out tls.Certificate
	var chain []*x509.Certificate
	for _, b := range certBlocks {
		if !isCertType(b.Type) {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("tlsreload: %s: certificate %d: %w", certFile, len(chain), err)
		}
		out.Certificate = append(out.Certificate, b.Bytes)
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return tls.Certificate{}, fmt.Errorf("tlsreload: %s: %w", certFile, ErrNoCertificate)
	}
	var keyDER []byte
	for _, b := range keyBlocks {
		if isKeyType(b.Type) {
			keyDER = b.Bytes
			break
		}
	}
	if keyDER == nil {
		return tls.Certificate{}, fmt.Errorf("tlsreload: %s: %w", keyFile, ErrNoKey)
	}
	key, err := parseKey(keyDER)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsreload: %s: %w", keyFile, err)
	}
	leaf := chain[0]
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return tls.Certificate{}, fmt.Errorf("tlsreload: %s does not fit %s: %w", keyFile, certFile, ErrKeyMismatch)
	}
	if now.Before(leaf.NotBefore) {
		return tls.Certificate{}, fmt.Errorf("tlsreload: %s: %w (from %s)", certFile, ErrNotYetValid, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(leaf.NotAfter) {
		return tls.Certificate{}, fmt.Errorf("tlsreload: %s: %w (on %s)", certFile, ErrExpired, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	for i := 0; i+1 < len(chain); i++ {
		if !bytes.Equal(chain[i].RawIssuer, chain[i+1].RawSubject) {
			return tls.Certificate{}, fmt.Errorf("tlsreload: %s: %w: certificate %d (%s) is not issued by certificate %d (%s)",
				certFile, ErrChainOrder, i, chain[i].Subject, i+1, chain[i+1].Subject)
		}
	}
	out.PrivateKey = key
	out.Leaf = leaf
	return out, nil
}

// MaxFileSize bounds a certificate, key or CA file. A real one is a few
// kilobytes; a CA bundle of every public root is about 250 KiB.
const MaxFileSize = 4 << 20

// readFile reads a PEM file that must be a regular file (following
// symlinks, as Kubernetes mounts secrets) of at most MaxFileSize bytes. It
// opens without blocking, so a FIFO put in a certificate's place cannot
// hang a reload, and reads at most one byte past the limit, so /dev/zero
// cannot exhaust memory.
func readFile(name string) ([]byte, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscallNonblock, 0)
	if err != nil {
		return nil, fmt.Errorf("tlsreload: %w", err) // *PathError names the file
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("tlsreload: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("tlsreload: %s: %w (%s)", name, ErrNotRegular, fi.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("tlsreload: %w", err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("tlsreload: %s: %w (more than %d bytes)", name, ErrTooLarge, MaxFileSize)
	}
	return b, nil
}

// decodeAll returns every PEM block of data, refusing a file with none and
// one with anything but white space after the last block.
func decodeAll(name string, data []byte) ([]*pem.Block, error) {
	var blocks []*pem.Block
	rest := data
	for {
		b, r := pem.Decode(rest)
		if b == nil {
			break
		}
		blocks = append(blocks, b)
		rest = r
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		if len(blocks) == 0 && !bytes.Contains(rest, []byte("-----BEGIN")) {
			return nil, fmt.Errorf("tlsreload: %s: %w", name, ErrNoPEM)
		}
		return nil, fmt.Errorf("tlsreload: %s: %w", name, ErrTruncated)
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("tlsreload: %s: %w", name, ErrNoPEM)
	}
	return blocks, nil
}

func isCertType(t string) bool { return t == "CERTIFICATE" }

func isKeyType(t string) bool {
	return t == "PRIVATE KEY" || t == "RSA PRIVATE KEY" || t == "EC PRIVATE KEY"
}

func hasType(blocks []*pem.Block, is func(string) bool) bool {
	for _, b := range blocks {
		if is(b.Type) {
			return true
		}
	}
	return false
}

func parseKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, fmt.Errorf("unsupported private key type %T", k)
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("cannot parse private key (PKCS#8, PKCS#1 or SEC 1 expected)")
}

func loadPool(file string) (*x509.CertPool, error) {
	data, err := readFile(file)
	if err != nil {
		return nil, err
	}
	blocks, err := decodeAll(file, data)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for _, b := range blocks {
		if !isCertType(b.Type) {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tlsreload: %s: CA %d: %w", file, n, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("tlsreload: %s: %w", file, ErrNoCertificate)
	}
	return pool, nil
}
