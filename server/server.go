package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/handoff-go/handoff/internal/hijack"
	"github.com/handoff-go/handoff/internal/listen"
	"github.com/handoff-go/handoff/internal/logx"
	"github.com/handoff-go/handoff/internal/osx"
	"github.com/handoff-go/handoff/internal/protocol"
	"github.com/handoff-go/handoff/internal/sdnotify"
	"github.com/handoff-go/handoff/internal/signals"
	"github.com/handoff-go/handoff/listeners"
)

type phase int

const (
	phaseNew phase = iota
	phaseStarting
	phaseServing
	phaseStopped
)

// decl is a listener as declared by Listen.
type decl struct {
	name string
	addr listen.Addr
	spec *listen.Spec
}

// Server runs named listeners and hands them to a new copy of the program
// on restart. Create one with New; the zero value is not usable.
//
// A Server plays one of three roles, chosen when Serve starts:
//
//   - a server (the default): it binds or inherits the sockets, serves
//     them, and on restart starts the new process and hands them over;
//   - a master (WithMaster, or PID 1): it binds the sockets and serves
//     through a worker process it starts, replaces it on restart, and keeps
//     its pid for the life of the service;
//   - a worker: a process a master started (the program is the same; the
//     environment says which). It serves like a server, but restarts are
//     the master's to make.
//
// Each method's documentation says what it does in each role.
type Server struct {
	cfg    config
	sys    *osx.OS
	log    logx.Logger
	router *signals.Router
	hj     hijack.Registry
	args   []string
	dir    string        // the working directory at start, for a restart's child
	again  chan struct{} // a second stop signal ends the shutdown delay
	wake   chan struct{} // wakeDrain's: something a drain waits for ended

	notifier  sdnotify.Notifier
	masterPID int             // in a worker: the master that started it
	role      role            // chosen when Serve starts
	master    *master         // in a master: its state
	activated map[string]bool // listeners adopted from socket activation

	decls []decl
	errs  []error

	draining     atomic.Bool
	stopping     atomic.Bool // asked to stop; the shutdown delay may still run
	stopNotified atomic.Bool
	inflight     atomic.Int64
	hammered     atomic.Int64
	drainStart   atomic.Int64 // unix nanoseconds the drain started at, 0 before
	drainTook    atomic.Int64 // nanoseconds the drain took, once over
	restartsOK   atomic.Int64
	restartsBad  atomic.Int64

	mu         sync.Mutex
	phase      phase
	services   []*service
	restarting bool
	generation int
	handedOff  bool
	reason     string
	serving    chan struct{} // closed once every listener serves
	quit       chan struct{} // closed when a drain starts
	drained    chan struct{} // closed when the drain is over
	hammerCh   chan struct{} // closed by Hammer
	hammerOnce sync.Once

	masterTimings masterTimings

	family []byte // protocol.EnvFamily's secret; see familySecret

	passed         []passedFile        // PassFile's, for every child
	inheritedFiles map[string]*os.File // passed by the parent, not yet claimed
}

// New returns a server configured by opts. Option errors are reported by
// Serve.
func New(opts ...Option) *Server {
	return newServer(osx.Real(), opts...)
}

func newServer(sys *osx.OS, opts ...Option) *Server {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	s := &Server{
		masterTimings: defaultMasterTimings,
		cfg:           cfg,
		sys:           sys,
		router:        signals.NewRouter(cfg.source),
		args:          append([]string(nil), os.Args...),
		serving:       make(chan struct{}),
		again:         make(chan struct{}, 1),
		wake:          make(chan struct{}, 1),
		activated:     map[string]bool{},
		quit:          make(chan struct{}),
		drained:       make(chan struct{}),
		hammerCh:      make(chan struct{}),
	}
	s.log = cfg.log.WithInt("pid", sys.Getpid())
	s.inheritedFiles = loadInheritedFiles()
	// Resolved now: the directory may be gone by the time of a restart.
	s.dir, _ = sys.Getwd()
	// Read once, before any goroutine can send a notification.
	socket, _ := sys.LookupEnv(protocol.EnvNotifySocket)
	s.notifier = sdnotify.New(socket)
	s.routeSignals()
	return s
}

// Listen declares a listener called name on addr ("host:port" or ":port").
// Without a kind option it serves the server's handler over HTTP. Names
// must be unique: they are how a new process finds its sockets. Errors
// are reported by Serve. Listen returns s, for chaining.
func (s *Server) Listen(name, addr string, opts ...listeners.Option) *Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase != phaseNew {
		s.errs = append(s.errs, fmt.Errorf("server: Listen(%q) after Serve", name))
		s.log.Error().Str("listener", name).Msg("Listen called after Serve; ignored")
		return s
	}
	if err := protocol.CheckName(name); err != nil {
		s.errs = append(s.errs, fmt.Errorf("server: listener %q: %w", name, err))
		return s
	}
	for _, d := range s.decls {
		if d.name == name {
			s.errs = append(s.errs, fmt.Errorf("server: listener %q declared twice", name))
			return s
		}
	}
	a, err := listen.ParseAddr(addr)
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("server: listener %q: bad address %q: %w", name, addr, err))
		return s
	}
	spec, err := listen.Build(opts...)
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("server: listener %q: %w", name, err))
		return s
	}
	if err := spec.Check(a); err != nil {
		s.errs = append(s.errs, fmt.Errorf("server: listener %q: %w", name, err))
		return s
	}
	s.decls = append(s.decls, decl{name: name, addr: a, spec: spec})
	if c := spec.Companion; c != nil {
		d, err := s.companionDecl(name, a, c)
		if err == nil {
			err = protocol.CheckName(d.name)
		}
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("server: listener %q: %w", name, err))
			return s
		}
		s.decls = append(s.decls, d)
	}
	return s
}

// check reports every configuration error at once.
func (s *Server) check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	errs := append(append([]error(nil), s.cfg.errs...), s.errs...)
	if s.cfg.executable != "" && runtime.GOOS != "windows" {
		if err := runnable(s.absolute(s.cfg.executable)); err != nil {
			errs = append(errs, fmt.Errorf("server: WithExecutable: %w", err))
		}
	}
	for _, d := range s.decls {
		if to := d.spec.Redirect; to != "" {
			if t, ok := s.declNamed(to); !ok || !t.spec.TLS() || t.spec.Kind != listen.KindHTTP {
				errs = append(errs, fmt.Errorf("server: listener %q redirects to %q, which is not a declared HTTPS listener", d.name, to))
			}
		}
	}
	if len(s.decls) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("server: no listener declared"))
	}
	return errors.Join(errs...)
}

// startDir is the directory a restart's child starts in: this process's
// working directory when it started, or, if that is gone, the current one.
func (s *Server) startDir() string {
	if s.dir == "" {
		return ""
	}
	if fi, err := os.Stat(s.dir); err != nil || !fi.IsDir() {
		s.log.Warn().Str("dir", s.dir).Msg("the start directory is gone; the child starts in the current one")
		return ""
	}
	return s.dir
}

// stop marks the server stopped and releases whoever waits for the drain.
func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phase = phaseStopped
	s.closeQuitLocked("stopped")
	s.closeDrainedLocked()
}

func (s *Server) closeDrainedLocked() {
	select {
	case <-s.drained:
	default:
		close(s.drained)
	}
}

func (s *Server) closeQuitLocked(reason string) bool {
	select {
	case <-s.quit:
		return false
	default:
	}
	s.reason = reason
	s.draining.Store(true)
	close(s.quit)
	return true
}

// beginDrain starts a drain for reason unless one has started, and
// reports whether it did.
func (s *Server) beginDrain(reason string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase == phaseNew {
		// Nothing serves yet: there is nothing to drain.
		s.phase = phaseStopped
		s.closeDrainedLocked()
	}
	return s.closeQuitLocked(reason)
}

// Shutdown stops accepting, lets every open connection finish (hammer time
// still applies), and returns when the drain is over, or ctx.Err() if ctx
// ends first; the drain goes on. Called before Serve, it makes Serve
// return ErrClosed. It skips the shutdown delay, which is for signals.
//
// In a master, it stops the current worker (SIGTERM) and returns once
// every worker has exited.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginDrain("shutdown requested")
	select {
	case <-s.drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// hammerOwn is Hammer in a process that serves.
func (s *Server) hammerOwn() error {
	if !s.draining.Load() {
		s.log.Warn().Msg("hammer requested while not draining; ignored")
		return ErrNotDraining
	}
	s.hammerOnce.Do(func() { close(s.hammerCh) })
	return nil
}

// RegisterOnShutdown registers fn to run, on a goroutine of its own, when
// a drain starts: after a handoff to a new process and on shutdown.
// Handlers of hijacked connections (websockets) use it to say goodbye;
// hijack.Notify(r.Context()) gives the same news as a channel. A master
// serves no connection and never runs fn; its workers do.
func (s *Server) RegisterOnShutdown(fn func()) { s.hj.OnShutdown(fn) }

// Handle gives sig the action fn, replacing the default one (nil leaves
// the signal with its hooks only).
func (s *Server) Handle(sig os.Signal, fn func()) { s.router.Handle(sig, fn) }

// Before adds fn to the hooks that run, in registration order, before the
// action of sig.
func (s *Server) Before(sig os.Signal, fn func()) { s.router.Before(sig, fn) }

// After adds fn to the hooks that run, in registration order, after the
// action of sig.
func (s *Server) After(sig os.Signal, fn func()) { s.router.After(sig, fn) }

// Serving returns a channel that is closed once every listener serves.
func (s *Server) Serving() <-chan struct{} { return s.serving }

// Addr returns the address the listener called name is bound to, once
// Serve has opened it (in a master: once it has bound it), or nil.
func (s *Server) Addr(name string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, svc := range s.services {
		if svc.name == name {
			return listen.AddrOf(svc.raw)
		}
	}
	if s.master != nil {
		return s.master.addr(name)
	}
	return nil
}

func names(services []*service) []string {
	out := make([]string, len(services))
	for i, svc := range services {
		out[i] = svc.name
	}
	return out
}
