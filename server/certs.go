package server

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/handoff-go/handoff/internal/ticks"
	"github.com/handoff-go/handoff/internal/tlsreload"
)

// expiryCheckEvery is how often served certificates are checked for an
// approaching expiry, besides at start and at each reload.
const expiryCheckEvery = 12 * time.Hour

// logReload logs the outcome of a certificate reload of svc.
func (svc *service) logReload(infos []tlsreload.Info, err error) {
	if err != nil {
		svc.log.Error().Err(err).Msg("certificate reload failed; the current certificates stay")
		return
	}
	for _, in := range infos {
		svc.log.Info().Str("subject", in.Subject).Str("serial", in.Serial).
			Time("not_after", in.NotAfter).Str("cert_file", in.CertFile).Msg("certificate reloaded")
	}
	svc.warnExpiry(time.Now())
}

// warnExpiry logs, once per certificate and threshold, a served
// certificate with less than 30, then 7, days left.
func (svc *service) warnExpiry(now time.Time) {
	for _, in := range svc.certInfos() {
		w := tlsreload.Expiring(in.NotAfter, now)
		if w == 0 || !svc.expiryWarned(in.Serial, w) {
			continue
		}
		ev := svc.log.Warn().Str("subject", in.Subject).Str("serial", in.Serial).
			Time("not_after", in.NotAfter).Dur("left", in.NotAfter.Sub(now))
		if in.CertFile != "" {
			ev = ev.Str("cert_file", in.CertFile)
		}
		ev.Msg("certificate expires soon")
	}
}

// expiryWarned records a warning for serial at threshold w and reports
// whether it is the first.
func (svc *service) expiryWarned(serial string, w time.Duration) bool {
	svc.warnMu.Lock()
	defer svc.warnMu.Unlock()
	if svc.warned == nil {
		svc.warned = map[string]time.Duration{}
	}
	if prev, ok := svc.warned[serial]; ok && prev <= w {
		return false
	}
	svc.warned[serial] = w
	return true
}

// watchCerts follows the certificate files of every TLS listener (see
// tlsreload.Reloader.Watch) and checks expiry, until done is closed.
func (s *Server) watchCerts(services []*service, done <-chan struct{}) {
	services = slices.DeleteFunc(slices.Clone(services), func(svc *service) bool { return svc.certs == nil && svc.source == nil })
	if len(services) == 0 {
		return // no certificates: no ticker, whose timer the scheduler would look at (see internal/ticks)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, svc := range services {
		svc.warnExpiry(time.Now())
		if svc.certs != nil && s.cfg.certWatch > 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				svc.certs.Watch(ctx, s.cfg.certWatch, svc.logReload)
			}()
		}
	}
	t := ticks.NewTicker(expiryCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-done:
			cancel()
			wg.Wait()
			return
		case <-t.C:
			for _, svc := range services {
				svc.warnExpiry(time.Now())
			}
		}
	}
}
