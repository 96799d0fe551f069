package server

import (
	"context"
	"io"
	"net/http"
	"time"
)

// HealthHandler answers 200 "ok" while the server serves and 503
// "draining" from the moment it is asked to stop (including the shutdown
// delay), so a load balancer or Kubernetes takes it out of rotation before
// it stops accepting.
func (s *Server) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if s.stopping.Load() || s.draining.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "draining\n")
			return
		}
		io.WriteString(w, "ok\n")
	})
}

// shutdownOnSignal returns the action of SIGINT and SIGTERM: the role's
// stop (stopAsked in a process that serves).
func (s *Server) shutdownOnSignal(name string) func() {
	return func() { s.currentRole().stop(name) }
}

// stopAsked stops the server, for the reason why: with a shutdown delay,
// keep serving (health answering 503) for that long, then drain; return
// once drained, so After hooks run after it. A second stop during the
// delay drains at once.
func (s *Server) stopAsked(why string) {
	first := s.stopping.CompareAndSwap(false, true)
	s.notifyStopping(why)
	if first && s.cfg.shutdownDelay > 0 && !s.draining.Load() {
		s.log.Info().Dur("delay", s.cfg.shutdownDelay).Str("why", why).
			Msg("shutdown requested; serving on while health checks answer 503")
		t := time.NewTimer(s.cfg.shutdownDelay)
		select {
		case <-t.C:
		case <-s.quit:
		case <-s.again:
		}
		t.Stop()
	} else if !first {
		select {
		case s.again <- struct{}{}:
		default:
		}
	}
	s.beginDrain(why)
	s.Shutdown(context.Background())
}
