//go:build unix

package server

import "syscall"

// routeSignals gives each handled signal its default action.
func (s *Server) routeSignals() {
	s.router.Handle(syscall.SIGHUP, func() { s.Restart() })
	s.router.Handle(syscall.SIGINT, s.shutdownOnSignal("SIGINT"))
	s.router.Handle(syscall.SIGTERM, s.shutdownOnSignal("SIGTERM"))
	s.router.Handle(syscall.SIGUSR1, func() { s.ReloadCerts() })
	s.router.Handle(syscall.SIGUSR2, func() { s.Hammer() })
	s.router.Handle(syscall.SIGTSTP, func() {
		s.log.Info().Msg("SIGTSTP received; no action (hooks only)")
	})
}

// routeMasterSignals gives a master its actions where they differ from a
// server's: SIGTSTP is forwarded. SIGHUP, SIGINT, SIGTERM, SIGUSR1 and
// SIGUSR2 act through the master's role.
func (s *Server) routeMasterSignals() {
	s.router.Handle(syscall.SIGTSTP, func() {
		s.mu.Lock()
		m := s.master
		s.mu.Unlock()
		if m != nil {
			m.forward(syscall.SIGTSTP)
		}
	})
}

// routeWorkerSignals adds what a master's worker understands: SIGWINCH,
// replaced by a new worker, drain now.
func (s *Server) routeWorkerSignals() {
	s.router.Handle(sigReplaced, func() { s.beginDrain("replaced by a new worker") })
}
