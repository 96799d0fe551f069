//go:build windows

package server

// Restart is not supported on Windows.
func (s *Server) Restart() error {
	s.log.Warn().Msg("restart requested; not supported on Windows")
	return ErrRestartUnsupported
}
