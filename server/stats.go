package server

import (
	"errors"
	"fmt"
	"time"

	"github.com/handoff-go/handoff/internal/listen"
)

// Stats is a snapshot of a server.
type Stats struct {
	PID int
	// Generation is how many restarts led to this process (0 for the
	// first one started).
	Generation int
	Draining   bool
	Restarting bool
	// InFlight is the number of HTTP requests being handled.
	InFlight int64
	// Hijacked is the number of open hijacked connections (websockets).
	Hijacked int
	// Hammered counts connections closed by force at hammer time, of
	// which HijackedHammered were hijacked.
	Hammered         int64
	HijackedHammered int
	// RestartsSucceeded and RestartsFailed count the restarts this process
	// made (a master: all of them; a server: the failed ones, and the one
	// that handed over, at the end of its life). Generation counts the
	// restarts that led to this process.
	RestartsSucceeded int64
	RestartsFailed    int64
	// Drain is how long the drain has run, or took once over; zero before
	// it starts.
	Drain     time.Duration
	Listeners []ListenerStats
}

// ListenerStats describes one listener.
type ListenerStats struct {
	Name string
	// Network is "tcp", "udp" or "unix"; Addr the address on it (a path,
	// or "@name", for unix).
	Network string
	Addr    string
	// Kind is "http", "tcp", "packet" or "serve".
	Kind      string
	TLS       bool
	Inherited bool
	// Active is the number of open connections, hijacked ones excluded.
	Active int
	// CertExpiry is the earliest expiry of the certificates the listener
	// serves (from files or from ACME); Certs describes each.
	CertExpiry time.Time
	Certs      []CertInfo
}

// CertInfo describes a certificate a listener serves. CertFile is empty
// for a certificate from ACME.
type CertInfo struct {
	CertFile  string
	Subject   string
	DNSNames  []string
	Serial    string // hexadecimal
	NotBefore time.Time
	NotAfter  time.Time
}

// Stats returns a snapshot of the server. In a master, Listeners names the
// sockets it holds for its workers (connections are the workers' to
// count: ask them) and Generation counts the workers it has started.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{
		PID:        s.sys.Getpid(),
		Generation: s.generation,
		Restarting: s.restarting,
	}
	services, m := s.services, s.master
	s.mu.Unlock()
	if m != nil {
		st.Generation, st.Listeners = m.stats()
	}
	st.Draining = s.draining.Load()
	st.InFlight = s.inflight.Load()
	st.Hijacked = s.hj.Len()
	st.Hammered = s.hammered.Load()
	st.HijackedHammered = s.hj.Hammered()
	st.RestartsSucceeded, st.RestartsFailed = s.restartsOK.Load(), s.restartsBad.Load()
	if took := s.drainTook.Load(); took > 0 {
		st.Drain = time.Duration(took)
	} else if start := s.drainStart.Load(); start > 0 {
		st.Drain = time.Since(time.Unix(0, start))
	}
	for _, svc := range services {
		ls := ListenerStats{
			Name:      svc.name,
			Network:   svc.addr.Network,
			Addr:      listen.AddrOf(svc.raw).String(),
			Kind:      svc.spec.Kind.String(),
			TLS:       svc.spec.TLS(),
			Inherited: svc.inherited,
			Active:    svc.open(),
		}
		for _, in := range svc.certInfos() {
			ls.Certs = append(ls.Certs, CertInfo(in))
			if ls.CertExpiry.IsZero() || in.NotAfter.Before(ls.CertExpiry) {
				ls.CertExpiry = in.NotAfter
			}
		}
		st.Listeners = append(st.Listeners, ls)
	}
	return st
}

// reloadOwnCerts is ReloadCerts in a process that serves.
func (s *Server) reloadOwnCerts() error {
	s.mu.Lock()
	services := s.services
	s.mu.Unlock()
	var errs []error
	reloaded := 0
	for _, svc := range services {
		if svc.certs == nil {
			continue
		}
		infos, err := svc.certs.Reload()
		svc.logReload(infos, err)
		if err != nil {
			errs = append(errs, fmt.Errorf("server: listener %q: %w", svc.name, err))
			continue
		}
		reloaded++
	}
	if reloaded == 0 && len(errs) == 0 {
		s.log.Info().Msg("certificate reload requested; no listener has certificate files")
	}
	return errors.Join(errs...)
}
