//go:build windows

package server

import (
	"context"
	"os"
	"syscall"
)

// routeSignals gives each handled signal its default action. Windows
// delivers only interrupts (Ctrl-C, Ctrl-Break) and termination.
func (s *Server) routeSignals() {
	s.router.Handle(os.Interrupt, s.shutdownOnSignal("interrupt"))
	s.router.Handle(syscall.SIGTERM, s.shutdownOnSignal("SIGTERM"))
}

func (s *Server) shutdownOnSignal(name string) func() {
	return func() {
		s.beginDrain(name)
		s.Shutdown(context.Background())
	}
}
