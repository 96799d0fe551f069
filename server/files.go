package server

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/handoff-go/handoff/internal/protocol"
)

// Descriptors other than listeners that a program hands to the process a
// restart starts: a pipe to a helper, a netlink socket, a lock file. The
// parent passes them after the readiness pipe and names them in
// HANDOFF_FILES; a child finds them by name.

// PassFile hands f to every process a restart starts from now on, under
// name (the rules of a listener's name). The new process gets it from
// InheritedFile(name). f stays open in this process; a duplicate is
// passed. A bad name or a nil f is an error.
func (s *Server) PassFile(name string, f *os.File) error {
	if err := protocol.CheckName(name); err != nil {
		return fmt.Errorf("server: PassFile(%q): %w", name, err)
	}
	if f == nil {
		return fmt.Errorf("server: PassFile(%q): %w", name, errors.New("nil file"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range s.passed {
		if p.name == name {
			s.passed[i].f = f
			return nil
		}
	}
	s.passed = append(s.passed, passedFile{name, f})
	return nil
}

// InheritedFile returns the file the parent passed under name with
// PassFile, or nil: in the first process, in one whose parent passed no
// such file, and after a first call for the same name (the file is the
// caller's from then on). It can be called before Serve, to decide
// whether to open the file afresh.
func (s *Server) InheritedFile(name string) *os.File {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.inheritedFiles[name]
	delete(s.inheritedFiles, name)
	return f
}

type passedFile struct {
	name string
	f    *os.File
}

// inheritedFileNames is HANDOFF_FILES, when the handoff variables come
// from this process's parent.
func inheritedFileNames() []string {
	v, ok := os.LookupEnv(protocol.EnvFiles)
	if !ok || v == "" {
		return nil
	}
	m, err := protocol.Parse(v)
	if err != nil {
		return nil
	}
	return m.Names()
}

// closeUnclaimed closes the inherited files the program never asked for.
func (s *Server) closeUnclaimed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, f := range s.inheritedFiles {
		s.log.Info().Str("file", name).Msg("closing a passed file this program never asked for")
		f.Close()
		delete(s.inheritedFiles, name)
	}
}

// filesEnv is the HANDOFF_FILES assignment for names, or "".
func filesEnv(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return protocol.EnvFiles + "=" + strings.Join(names, ",")
}
