//go:build windows

package server

import (
	"errors"
	"net"
)

var errMasterUnsupported = errors.New("server: master mode is not supported on Windows")

func (s *Server) masterMode() bool { return false }
func (s *Server) detectMaster()    {}
func (s *Server) askMaster() error { return errMasterUnsupported }
func (s *Server) serveMaster() error {
	return errMasterUnsupported
}

type master struct{}

func (m *master) addr(string) net.Addr          { return nil }
func (m *master) stats() (int, []ListenerStats) { return 0, nil }

func (m *master) restart() error     { return errMasterUnsupported }
func (m *master) reloadCerts() error { return errMasterUnsupported }
func (m *master) hammer() error      { return errMasterUnsupported }
func (m *master) stop(string)        {}

func (m *master) forward(sigNone) error    { return errMasterUnsupported }
func (m *master) forwardAll(sigNone) error { return errMasterUnsupported }

type sigNone int

const (
	sigReload sigNone = iota
	sigHammer
)

type masterTimings struct{}

var defaultMasterTimings masterTimings
