package server

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// writePIDFile makes the PID file name this process.
func (s *Server) writePIDFile() error { return s.writePIDFileFor(s.sys.Getpid()) }

// writePIDFileFor replaces the PID file with one naming pid: a temporary
// file in the same directory, renamed over the old one, so a reader sees
// the old pid or the new one, never a partial file. A worker never writes
// it: its master's pid stays in it.
func (s *Server) writePIDFileFor(pid int) error {
	if s.cfg.pidFile == "" || s.masterPID != 0 {
		return nil
	}
	if err := writePIDFile(s.cfg.pidFile, pid); err != nil {
		s.log.Error().Err(err).Str("pid_file", s.cfg.pidFile).Msg("cannot write the PID file")
		return fmt.Errorf("server: PID file: %w", err)
	}
	s.log.Debug().Str("pid_file", s.cfg.pidFile).Int("names", pid).Msg("PID file written")
	return nil
}

func writePIDFile(path string, pid int) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if _, err := fmt.Fprintf(tmp, "%d\n", pid); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// removePIDFile removes the PID file when this process stops for good and
// the file still names it; after a handoff it names the child.
func (s *Server) removePIDFile() {
	s.mu.Lock()
	handedOff := s.handedOff
	s.mu.Unlock()
	if s.cfg.pidFile == "" || handedOff || s.masterPID != 0 {
		return
	}
	data, err := os.ReadFile(s.cfg.pidFile)
	if err != nil || !bytes.Equal(bytes.TrimSpace(data), []byte(strconv.Itoa(s.sys.Getpid()))) {
		return
	}
	if err := os.Remove(s.cfg.pidFile); err != nil {
		s.log.Warn().Err(err).Str("pid_file", s.cfg.pidFile).Msg("cannot remove the PID file")
	}
}
