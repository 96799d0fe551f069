package server

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// program is the file a restart runs. WithExecutable names it; otherwise
// it is the path the program was started by (its argv[0]), made absolute
// against the start directory, or looked up in PATH when it has no slash,
// anew at each restart and with symlinks left alone, so that a deploy that
// switches a symlink (current -> releases/v42) runs the new release. When
// argv[0] names no executable file (a launcher may set it to anything),
// the binary of this process is run instead.
func (s *Server) program() (string, error) {
	if s.cfg.executable != "" {
		p := s.absolute(s.cfg.executable)
		if err := runnable(p); err != nil {
			return "", fmt.Errorf("WithExecutable(%q): %w", s.cfg.executable, err)
		}
		return p, nil
	}
	if len(s.args) > 0 && s.args[0] != "" {
		a0 := s.args[0]
		var p string
		var err error
		if strings.Contains(a0, "/") {
			p = s.absolute(a0)
			err = runnable(p)
		} else {
			p, err = exec.LookPath(a0)
		}
		if err == nil {
			return p, nil
		}
		s.log.Warn().Str("argv0", a0).Err(err).Msg("argv[0] names no executable file; running this process's binary")
	}
	exe, err := s.sys.Executable()
	if err != nil {
		return "", fmt.Errorf("locate the binary: %w", err)
	}
	return exe, nil
}

// absolute makes p absolute against the directory the program started in.
func (s *Server) absolute(p string) string {
	if filepath.IsAbs(p) || s.dir == "" {
		return p
	}
	return filepath.Join(s.dir, p)
}

// runnable checks that p is a regular file someone may execute.
func runnable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", p)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s: %w", p, errNotExecutable)
	}
	return nil
}

var errNotExecutable = errors.New("not executable")

// goRunBinary reports whether exe is a binary `go run` started: one it
// built in a temporary directory (…/go-build123/b001/exe/name), which it
// deletes once its child exits, or one from the build cache
// (GOCACHE/ab/<64 hex digits>-d/name). Either way go run exits with its
// child, which a restart in fork mode would make happen at once, leaving
// the server detached from the terminal; such a program is served in
// master mode.
func goRunBinary(exe string) bool {
	dir := filepath.Dir(exe)
	if filepath.Base(dir) == "exe" && strings.HasPrefix(filepath.Base(filepath.Dir(filepath.Dir(dir))), "go-build") {
		return true
	}
	entry, shard := filepath.Base(dir), filepath.Base(filepath.Dir(dir))
	return len(entry) == 66 && strings.HasSuffix(entry, "-d") && lowerHex(entry[:64]) &&
		len(shard) == 2 && lowerHex(shard)
}

// lowerHex reports whether s is lower-case hexadecimal digits only. (Two
// regular expressions did this once; they cost every process their
// compilation at start, and regexp's code in the binary.)
func lowerHex(s string) bool {
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
