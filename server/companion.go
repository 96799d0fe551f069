package server

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"net/http"
	"sync"

	"github.com/handoff-go/handoff/internal/listen"
)

var errCompanionAddr = errors.New("HTTP/3 needs a host:port address (TCP, and UDP on the same port)")

// familyLen is the length of the family secret (protocol.EnvFamily).
const familyLen = 32

// familySecret returns the secret this process shares with the processes
// before and after it, made on first use by a process started by hand.
func (s *Server) familySecret() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.family == nil {
		s.family = make([]byte, familyLen)
		rand.Read(s.family)
	}
	return s.family
}

// familyForChild is the family secret a restart passes on, or nil: a
// process passes the one it has, and one that serves a companion makes
// it if it has not yet. A program without companions neither makes a
// secret nor puts one in its children's environment; a child that
// declares a companion makes its own.
func (s *Server) familyForChild() []byte {
	for _, d := range s.decls {
		if d.spec.Companion != nil {
			return s.familySecret()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.family
}

// companionDecl declares the socket of a companion of the listener name
// at a: a UDP socket on the same address, served like a Packet listener.
func (s *Server) companionDecl(name string, a listen.Addr, c *listen.Companion) (decl, error) {
	if a.Network != "tcp" {
		return decl{}, errCompanionAddr
	}
	spec := &listen.Spec{Kind: listen.KindPacket}
	var mu sync.Mutex
	var onHammer func()
	spec.OnHammer = func() {
		mu.Lock()
		fn := onHammer
		mu.Unlock()
		if fn != nil {
			fn()
		}
	}
	spec.Packet = func(ctx context.Context, pc net.PacketConn) {
		primary := s.serviceNamed(name)
		env := listen.CompanionEnv{
			Log:        s.log.WithStr("listener", name+"-"+c.Suffix),
			Generation: s.currentGeneration(),
			Family:     s.familySecret(),
			OnHammer: func(fn func()) {
				mu.Lock()
				onHammer = fn
				mu.Unlock()
			},
		}
		if primary != nil {
			env.TLS, env.Handler = primary.tlsCfg, primary.hs.Handler
		}
		c.Serve(ctx, pc, env)
	}
	return decl{name: name + "-" + c.Suffix, addr: listen.Addr{Network: "udp", Address: a.Address}, spec: spec}, nil
}

func (s *Server) currentGeneration() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.generation
}

// serviceNamed returns the service of the listener name, or nil.
func (s *Server) serviceNamed(name string) *service {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, svc := range s.services {
		if svc.name == name {
			return svc
		}
	}
	return nil
}

// altSvc sets the Alt-Svc header value on every response of h.
func altSvc(value string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Alt-Svc", value)
		h.ServeHTTP(w, r)
	})
}
