//go:build windows

package server

// handOff is not supported on Windows.
func (s *Server) handOff() error {
	s.log.Warn().Msg("restart requested; not supported on Windows")
	return ErrRestartUnsupported
}
