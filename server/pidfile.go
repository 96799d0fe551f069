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

// writePIDFileFor replaces the PID file with one naming pid (see
// stagedPIDFile). A worker never writes it: its master's pid stays in it.
func (s *Server) writePIDFileFor(pid int) error {
	return s.commitPIDFile(s.stagePIDFile(pid), pid)
}

// stagePIDFile writes, beside the PID file, one naming pid, for
// commitPIDFile to put in place. A restart stages its child's while the
// child starts, so that the moment the child is ready, when the old
// process waits for this file before it stops accepting, costs a rename.
// It returns nil if there is no PID file to write, or if staging failed:
// commitPIDFile then writes the file itself, and reports why it cannot.
func (s *Server) stagePIDFile(pid int) *stagedPIDFile {
	if s.cfg.pidFile == "" || s.masterPID != 0 {
		return nil
	}
	f, err := stagePIDFile(s.cfg.pidFile, pid)
	if err != nil {
		return nil
	}
	return f
}

// commitPIDFile makes the PID file name pid: staged, if it was, renamed
// into place.
func (s *Server) commitPIDFile(staged *stagedPIDFile, pid int) error {
	if s.cfg.pidFile == "" || s.masterPID != 0 {
		return nil
	}
	var err error
	if staged == nil {
		if staged, err = stagePIDFile(s.cfg.pidFile, pid); err == nil {
			defer staged.discard()
		}
	}
	if err == nil {
		err = staged.commit()
	}
	if err != nil {
		s.log.Error().Err(err).Str("pid_file", s.cfg.pidFile).Msg("cannot write the PID file")
		return fmt.Errorf("server: PID file: %w", err)
	}
	s.log.Debug().Str("pid_file", s.cfg.pidFile).Int("names", pid).Msg("PID file written")
	return nil
}

// stagedPIDFile is a PID file written in full under a temporary name in
// the same directory, so that renaming it over the old one shows a reader
// the old pid or the new one, never a partial file. It is not synced to
// disk: a PID file means nothing once the machine restarts, and a sync
// under load took 3 to 7 ms.
type stagedPIDFile struct{ tmp, path string }

func stagePIDFile(path string, pid int) (*stagedPIDFile, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*")
	if err != nil {
		return nil, err
	}
	_, err = fmt.Fprintf(tmp, "%d\n", pid)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return nil, err
	}
	return &stagedPIDFile{tmp: tmp.Name(), path: path}, nil
}

func (f *stagedPIDFile) commit() error { return os.Rename(f.tmp, f.path) }

// discard removes the staged file if it was not committed. Safe on nil.
func (f *stagedPIDFile) discard() {
	if f != nil {
		os.Remove(f.tmp) // gone once renamed
	}
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
