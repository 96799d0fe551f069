//go:build unix

package server

import (
	"context"
	"syscall"
)

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

// shutdownOnSignal drains and returns once the drain is over, so After
// hooks run after it.
func (s *Server) shutdownOnSignal(name string) func() {
	return func() {
		s.beginDrain(name)
		s.Shutdown(context.Background())
	}
}
