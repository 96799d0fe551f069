//go:build windows

package server

import (
	"os"
	"syscall"
)

// routeSignals gives each handled signal its default action. Windows
// delivers only interrupts (Ctrl-C, Ctrl-Break) and termination.
func (s *Server) routeSignals() {
	s.router.Handle(os.Interrupt, s.shutdownOnSignal("interrupt"))
	s.router.Handle(syscall.SIGTERM, s.shutdownOnSignal("SIGTERM"))
}

func (s *Server) routeMasterSignals() {}

func (s *Server) routeWorkerSignals() {}
