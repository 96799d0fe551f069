package server

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/handoff-go/handoff/internal/listen"
	"github.com/handoff-go/handoff/internal/protocol"
)

// adopt takes the listeners a parent passed, if the environment says this
// process is the child of a restart. It always unsets the variables, so
// the program's own subprocesses never see them.
//
// Variables that a parent of another pid set (or that someone set by hand)
// are ignored with a warning: the descriptors they name are not ours. A
// manifest from the real parent that is malformed, or names a descriptor
// that is not a listening socket, is an error: the child exits and the
// parent goes on serving.
func (s *Server) adopt() (map[string]listen.Socket, *os.File, int, error) {
	manifest, hasOrder := s.sys.LookupEnv(protocol.EnvOrder)
	ppidVal, _ := s.sys.LookupEnv(protocol.EnvParentPID)
	genVal, _ := s.sys.LookupEnv(protocol.EnvGeneration)
	activated, _ := s.sys.LookupEnv(protocol.EnvActivated)
	if v, ok := s.sys.LookupEnv(protocol.EnvFamily); ok {
		if b, err := hex.DecodeString(v); err == nil && len(b) == familyLen {
			s.family = b
		} else {
			s.log.Warn().Msg("ignoring a malformed " + protocol.EnvFamily)
		}
	}
	for _, k := range protocol.Handoff {
		s.sys.Unsetenv(k)
	}
	if !hasOrder {
		adopted, err := s.adoptActivation()
		return adopted, nil, 0, err
	}
	ppid, err := strconv.Atoi(ppidVal)
	orphaned := false
	if err != nil || ppid != s.sys.Getppid() {
		// A parent killed during the handshake leaves its child with
		// another parent; the sockets are still this process's, and
		// serving on them keeps the service up. Variables of a live
		// process other than the parent are not: someone copied them.
		if err != nil || ppid <= 1 || s.sys.Alive(ppid) {
			s.log.Warn().Str(protocol.EnvOrder, manifest).Str(protocol.EnvParentPID, ppidVal).
				Int("ppid", s.sys.Getppid()).
				Msg("ignoring inherited listeners: the variables were not set by this process's parent")
			adopted, err := s.adoptActivation()
			return adopted, nil, 0, err
		}
		orphaned = true
		s.log.Warn().Int("parent", ppid).Msg("the parent died during the handoff; adopting its listeners")
	}
	for _, k := range []string{protocol.EnvListenPID, protocol.EnvListenFDs, protocol.EnvListenFDNames} {
		s.sys.Unsetenv(k) // never meant for a handoff child
	}
	m, err := protocol.Parse(manifest)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("server: %s=%q: %w", protocol.EnvOrder, manifest, err)
	}
	gen, err := strconv.Atoi(genVal)
	if err != nil || gen < 1 {
		return nil, nil, 0, fmt.Errorf("server: %s=%q: not a positive number", protocol.EnvGeneration, genVal)
	}
	if activated != "" {
		for _, name := range strings.Split(activated, ",") {
			if _, ok := m.FD(name); ok {
				s.activated[name] = true
			}
		}
	}
	adopted := make(map[string]listen.Socket, m.Len())
	fail := func(err error) (map[string]listen.Socket, *os.File, int, error) {
		for _, ln := range adopted {
			ln.Close()
		}
		return nil, nil, 0, err
	}
	for _, name := range m.Names() {
		fd, _ := m.FD(name)
		ln, err := listen.Inherit(fd, name)
		if err != nil && orphaned {
			// Not what a parent would have passed: stale variables.
			s.log.Warn().Err(err).Msg("ignoring inherited listeners: the variables name no listening socket")
			for _, ln := range adopted {
				ln.Close()
			}
			adopted, err := s.adoptActivation()
			return adopted, nil, 0, err
		}
		if err != nil {
			return fail(fmt.Errorf("server: %w", err))
		}
		adopted[name] = ln
	}
	ready, err := readyPipe(m.ReadyFD())
	if err != nil {
		return fail(fmt.Errorf("server: readiness pipe: fd %d: %w", m.ReadyFD(), err))
	}
	if orphaned {
		// Nobody reads it: this process announces itself as a first one.
		ready.Close()
		ready = nil
	}
	s.log.Info().Strs("listeners", m.Names()).Int("parent", ppid).Int("generation", gen).
		Msg("adopted listeners from parent")
	return adopted, ready, gen, nil
}

// chosen is the socket picked for a declared listener.
type chosen struct {
	decl      decl
	ln        listen.Socket
	inherited bool
}

// choose picks a socket for every declared listener, in declaration
// order: an adopted one when the parent passed one for the same name and
// address, a fresh one otherwise. Adopted sockets this program no longer
// declares are closed, unless a renamed listener with the same address
// takes them over. On error every socket is closed.
func (s *Server) choose(adopted map[string]listen.Socket) (picked []chosen, err error) {
	defer func() {
		if err != nil {
			for _, c := range picked {
				c.ln.Close()
			}
			for _, ln := range adopted {
				ln.Close()
			}
		}
	}()
	for _, d := range s.decls {
		ln, inherited := adopted[d.name]
		if inherited {
			delete(adopted, d.name)
			// A socket from the service manager is what the operator
			// configured there; it wins over the declared address.
			if !s.activated[d.name] && !listen.SameAddr(d.addr, listen.AddrOf(ln)) {
				s.log.Info().Str("listener", d.name).Stringer("was", listen.AddrOf(ln)).Stringer("now", d.addr).
					Msg("the inherited socket is not of the declared kind or address; binding afresh")
				ln.Close()
				inherited = false
			}
		}
		if !inherited {
			ln, inherited = takeByAddr(adopted, s.decls, d)
			if inherited {
				s.log.Info().Str("listener", d.name).Stringer("addr", listen.AddrOf(ln)).
					Msg("adopted the socket of a renamed listener")
			}
		}
		if !inherited {
			if ln, err = listen.Bind(context.Background(), d.addr, d.spec.File); err != nil {
				return picked, fmt.Errorf("server: listener %q: %w", d.name, err)
			}
		}
		picked = append(picked, chosen{d, ln, inherited})
	}
	for name, ln := range adopted {
		s.log.Info().Str("listener", name).Stringer("addr", listen.AddrOf(ln)).
			Msg("closing inherited listener this program no longer declares")
		ln.Close()
		delete(adopted, name)
	}
	return picked, nil
}

// open chooses the sockets and builds a service on each.
func (s *Server) open(adopted map[string]listen.Socket) ([]*service, error) {
	picked, err := s.choose(adopted)
	if err != nil {
		return nil, err
	}
	links := linksOf(picked)
	services := make([]*service, 0, len(picked))
	for i, c := range picked {
		svc, err := s.newService(c.decl, c.ln, c.inherited, links[c.decl.name])
		if err != nil {
			for _, svc := range services {
				svc.release()
			}
			for _, c := range picked[i:] {
				c.ln.Close()
			}
			for _, svc := range services {
				svc.raw.Close()
			}
			return nil, err
		}
		services = append(services, svc)
		svc.log.Info().Stringer("addr", listen.AddrOf(c.ln)).Bool("inherited", c.inherited).
			Str("kind", c.decl.spec.Kind.String()).Bool("tls", c.decl.spec.TLS()).Msg("listening")
	}
	return services, nil
}

// takeByAddr removes and returns an adopted socket whose name no
// declaration uses and whose address is d's (a fixed port is required).
func takeByAddr(adopted map[string]listen.Socket, decls []decl, d decl) (listen.Socket, bool) {
	if _, port, err := net.SplitHostPort(d.addr.Address); d.addr.Network != "unix" && (err != nil || port == "0") {
		return nil, false
	}
	for name, ln := range adopted {
		if declared(decls, name) || !listen.SameAddr(d.addr, listen.AddrOf(ln)) {
			continue
		}
		delete(adopted, name)
		return ln, true
	}
	return nil, false
}

func declared(decls []decl, name string) bool {
	for _, d := range decls {
		if d.name == name {
			return true
		}
	}
	return false
}

// signalReady tells the parent that every listener serves.
func (s *Server) signalReady(ready *os.File) {
	defer ready.Close()
	if _, err := ready.Write([]byte(protocol.ReadyMessage)); err != nil {
		s.log.Warn().Err(err).Msg("cannot tell the parent this process is ready; serving anyway")
		return
	}
	s.log.Info().Msg("told the parent this process is ready")
}
