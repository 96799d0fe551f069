package server

import (
	"fmt"

	"github.com/handoff-go/handoff/internal/listen"
	"github.com/handoff-go/handoff/internal/protocol"
)

// adoptActivation takes the sockets systemd (or any manager speaking
// sd_listen_fds(3)) passed, when LISTEN_PID names this process: by name
// when LISTEN_FDNAMES names a declared listener, else in order. The
// variables are always unset. Variables of another process are ignored.
func (s *Server) adoptActivation() (map[string]listen.Socket, error) {
	pidVal, _ := s.sys.LookupEnv(protocol.EnvListenPID)
	fdsVal, _ := s.sys.LookupEnv(protocol.EnvListenFDs)
	namesVal, _ := s.sys.LookupEnv(protocol.EnvListenFDNames)
	for _, k := range []string{protocol.EnvListenPID, protocol.EnvListenFDs, protocol.EnvListenFDNames} {
		s.sys.Unsetenv(k)
	}
	a, ok, err := protocol.ParseActivation(s.sys.Getpid(), pidVal, fdsVal, namesVal)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if !ok {
		if pidVal != "" {
			s.log.Warn().Str(protocol.EnvListenPID, pidVal).Msg("ignoring socket activation meant for another process")
		}
		return nil, nil
	}
	declared := make([]string, len(s.decls))
	for i, d := range s.decls {
		declared[i] = d.name
	}
	assigned := a.Assign(declared)
	adopted := make(map[string]listen.Socket, a.Len())
	for i, name := range assigned {
		fd := uintptr(protocol.FirstFD + i)
		label := name
		if label == "" {
			label = fmt.Sprintf("fd%d", fd)
		}
		ln, err := listen.Inherit(fd, label)
		if err != nil {
			for _, l := range adopted {
				l.Close()
			}
			return nil, fmt.Errorf("server: socket activation: %w", err)
		}
		if name == "" {
			s.log.Warn().Uint64("fd", uint64(fd)).Stringer("addr", listen.AddrOf(ln)).Str("fd_name", a.Name(i)).
				Msg("socket-activated descriptor matches no listener; closing it")
			ln.Close()
			continue
		}
		adopted[name] = ln
		s.activated[name] = true
	}
	s.log.Info().Strs("listeners", keys(adopted)).Msg("adopted socket-activated listeners")
	return adopted, nil
}

func keys(m map[string]listen.Socket) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
