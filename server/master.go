//go:build unix

package server

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/internal/listen"

	"github.com/handoff-go/handoff/internal/osx"
	"github.com/handoff-go/handoff/internal/protocol"
)

// Master mode keeps one pid for the life of the service. The first process
// binds the sockets and never serves: it starts a worker (this same
// program) with the sockets, as a restart would, forwards signals to it,
// and on SIGHUP starts a new worker and, once that one is ready, tells the
// old one to drain. A terminal, a container runtime or a supervisor that
// follows one pid sees the master throughout. The master waits for its own
// workers only; as PID 1 it also reaps every orphan, as an init must.

// Timings of a master; tests shorten them.
type masterTimings struct {
	// killSlack is how long past its own shutdown delay and hammer time a
	// worker may take to exit before its master kills it.
	killSlack time.Duration
	// reapEvery is how often the reaper looks, besides on SIGCHLD, which
	// coalesces.
	reapEvery time.Duration
}

var defaultMasterTimings = masterTimings{killSlack: 10 * time.Second, reapEvery: time.Second}

// masterMode reports whether this process is a master: asked to be, PID 1,
// or a binary `go run` built (go run deletes it once the process it
// started exits, so the first process must stay); a worker never is.
func (s *Server) masterMode() bool {
	switch {
	case s.masterPID != 0:
		return false
	case s.cfg.master || s.sys.Getpid() == 1:
		return true
	}
	if exe, err := s.sys.Executable(); err == nil && goRunBinary(exe) {
		s.log.Info().Str("binary", exe).Msg("started by go run: master mode, so that restarts keep the binary go run built")
		return true
	}
	return false
}

// detectMaster recognises a worker started by a master.
func (s *Server) detectMaster() {
	v, ok := s.sys.LookupEnv(protocol.EnvMasterPID)
	if !ok {
		return
	}
	s.sys.Unsetenv(protocol.EnvMasterPID)
	if pid, err := strconv.Atoi(v); err == nil && pid == s.sys.Getppid() {
		s.masterPID = pid
	}
}

// askMaster is Restart in a worker: the master does the restart. It
// returns once the master has been asked; the master logs the outcome.
func (s *Server) askMaster() error {
	if s.stopping.Load() || s.draining.Load() {
		return ErrStopping
	}
	s.log.Info().Int("master", s.masterPID).Msg("restart requested; asking the master")
	if err := s.sys.Signal(s.masterPID, syscall.SIGHUP); err != nil {
		return fmt.Errorf("%w: signal the master: %w", ErrRestartFailed, err)
	}
	return nil
}

// worker is a worker process. Its master's reaper sees it exit.
type worker struct {
	osx.Process
	exited chan struct{}
	status error
}

func (w *worker) ended() bool {
	select {
	case <-w.exited:
		return true
	default:
		return false
	}
}

func (w *worker) Poll() (bool, error) {
	if w.ended() {
		return true, w.status
	}
	return false, nil
}

func (w *worker) Wait() error {
	<-w.exited
	return w.status
}

func (w *worker) Signal(sig os.Signal) error {
	if w.ended() {
		return nil
	}
	return w.Process.Signal(sig)
}

func (w *worker) Kill() error { return w.Signal(os.Kill) }

// master is the state of a master process.
type master struct {
	masterTimings
	s     *Server
	socks []socket
	init  bool // PID 1: reaps orphans too

	mu      sync.Mutex // guards workers, current, gen
	workers map[int]*worker
	current *worker
	gen     int

	exits chan *worker  // workers as they exit
	poke  chan struct{} // a worker was added: look at it
}

// serveMaster is Serve in master mode.
func (s *Server) serveMaster() error {
	adopted, ready, _, err := s.adopt()
	if err != nil {
		s.log.Error().Err(err).Msg("cannot adopt inherited listeners")
		s.stop()
		return err
	}
	if ready != nil {
		ready.Close() // a master that is itself a handoff child is unusual; its parent gives up
	}
	picked, err := s.choose(adopted)
	if err != nil {
		s.log.Error().Err(err).Msg("cannot open listeners")
		s.stop()
		return err
	}
	m := &master{s: s, masterTimings: s.masterTimings, init: s.sys.Getpid() == 1, workers: map[int]*worker{},
		exits: make(chan *worker, 8), poke: make(chan struct{}, 1)}
	for _, c := range picked {
		m.socks = append(m.socks, socket{c.decl.name, c.ln})
		s.log.Info().Str("listener", c.decl.name).Stringer("addr", listen.AddrOf(c.ln)).
			Bool("inherited", c.inherited).Msg("listening (master)")
	}
	defer func() {
		for _, sk := range m.socks {
			sk.ln.Close()
		}
	}()

	// SIGCHLD drives the reaper; a ticker covers signals that coalesce.
	sigchld := make(chan os.Signal, 8)
	signal.Notify(sigchld, syscall.SIGCHLD)
	defer signal.Stop(sigchld)
	defer goOwned(func(done <-chan struct{}) { m.reap(sigchld, done) })()

	s.mu.Lock()
	s.master, s.role = m, m
	s.mu.Unlock()
	if err := s.writePIDFile(); err != nil {
		s.stop()
		return err
	}
	if err := m.spawn(); err != nil {
		s.log.Error().Err(err).Msg("first worker failed")
		s.removePIDFile()
		s.stop()
		return err
	}
	s.mu.Lock()
	s.phase = phaseServing
	close(s.serving)
	s.mu.Unlock()
	s.notify("READY=1", "STATUS=master serving through pid "+strconv.Itoa(m.worker().Pid()))
	s.log.Info().Int("worker", m.worker().Pid()).Msg("master serving")
	if every := s.watchdogInterval(); every > 0 {
		defer goOwned(func(done <-chan struct{}) { s.watchdog(every, done) })()
	}
	return m.run()
}

// run waits for the end: a stop request, forwarded to the worker, or the
// worker's own exit; then for every worker still draining, so that none
// is killed with the master. A worker that outlives its shutdown delay and
// hammer time by killSlack is killed.
func (m *master) run() error {
	s := m.s
	quit := s.quit
	var kill <-chan time.Time
	var result error
	currentGone := false
	for !currentGone || m.live() > 0 {
		select {
		case <-quit:
			quit = nil
			s.notifyStopping(s.reason)
			if w := m.worker(); w != nil {
				s.log.Info().Int("worker", w.Pid()).Msg("stopping the worker")
				w.Signal(syscall.SIGTERM)
			}
			kill = time.After(s.cfg.shutdownDelay + s.cfg.hammerTime + m.killSlack)
		case <-kill:
			kill = nil
			for _, w := range m.all() {
				s.log.Error().Int("worker", w.Pid()).Msg("worker still running past hammer time; killing it")
				w.Kill()
			}
		case w := <-m.exits:
			if w != m.worker() {
				s.log.Info().Int("worker", w.Pid()).AnErr("status", w.status).Msg("old worker exited")
				continue
			}
			currentGone = true
			// A worker that exits 0 was asked to stop: Ctrl-C in a terminal
			// signals the worker and the master at once, and the worker
			// may finish first.
			if quit != nil && w.status != nil {
				s.log.Error().Int("worker", w.Pid()).AnErr("status", w.status).Msg("worker exited unexpectedly")
				result = fmt.Errorf("%w: pid %d: %v", ErrWorkerExited, w.Pid(), w.status)
			} else {
				s.log.Info().Int("worker", w.Pid()).Msg("worker stopped")
			}
			if n := m.live(); n > 0 {
				s.log.Info().Int("workers", n).Msg("waiting for replaced workers to finish draining")
				if kill == nil {
					kill = time.After(s.cfg.hammerTime + m.killSlack)
				}
			}
		}
	}
	for _, d := range s.decls {
		if s.activated[d.name] {
			continue // the service manager's: it removes what it made
		}
		if err := listen.RemoveSocketFile(d.addr); err != nil {
			s.log.Warn().Err(err).Str("listener", d.name).Msg("cannot remove the socket file")
		}
	}
	s.removePIDFile()
	s.stop()
	s.log.Info().Msg("master exiting")
	return result
}

func (m *master) worker() *worker {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.current
}

// live is the number of workers not reaped yet.
func (m *master) live() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.workers)
}

func (m *master) all() []*worker {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*worker, 0, len(m.workers))
	for _, w := range m.workers {
		out = append(out, w)
	}
	return out
}

// start starts a worker and registers it with the reaper.
func (m *master) start() (*worker, *os.File, error) {
	m.mu.Lock()
	m.gen++
	p, ready, err := m.s.startChild(m.socks, m.gen,
		[]string{protocol.EnvMasterPID + "=" + strconv.Itoa(m.s.sys.Getpid())},
		[]string{protocol.EnvNotifySocket, protocol.EnvWatchdogUSec, protocol.EnvWatchdogPID})
	if err != nil {
		m.mu.Unlock()
		return nil, nil, err
	}
	w := &worker{Process: p, exited: make(chan struct{})}
	m.workers[p.Pid()] = w
	m.mu.Unlock()
	select {
	case m.poke <- struct{}{}:
	default:
	}
	return w, ready, nil
}

// spawn starts a worker, waits until it is ready and makes it current;
// the worker it replaces is told to drain.
func (m *master) spawn() error {
	w, ready, err := m.start()
	if err != nil {
		return err
	}
	m.s.log.Info().Int("worker", w.Pid()).Msg("worker started")
	if err := m.s.awaitReady(w, ready); err != nil {
		return err
	}
	m.mu.Lock()
	old := m.current
	m.current = w
	m.mu.Unlock()
	m.s.log.Info().Int("worker", w.Pid()).Msg("worker ready")
	if old != nil {
		m.s.log.Info().Int("worker", old.Pid()).Msg("draining the old worker")
		old.Signal(sigReplaced)
	}
	return nil
}

// reloadCerts is ReloadCerts in the master: the current worker reloads.
func (m *master) reloadCerts() error { return m.forward(sigReload) }

// hammer is Hammer in the master: every worker is told, so that replaced
// ones still draining are hammered too.
func (m *master) hammer() error { return m.forwardAll(sigHammer) }

// stop stops the master: its worker is told at once and keeps the
// shutdown delay itself.
func (m *master) stop(why string) { m.s.beginDrain(why) }

// restart is Restart in the master.
func (m *master) restart() error {
	s := m.s
	if err := s.claimRestart(); err != nil {
		return err
	}
	defer s.endRestart()
	s.log.Info().Msg("restart requested (master)")
	s.notifyReloading()
	if err := m.spawn(); err != nil {
		s.log.Error().Err(err).Msg("restart failed; the old worker goes on serving")
		return s.restartFailed(err)
	}
	s.restartsOK.Add(1)
	s.notify("READY=1", "STATUS=master serving through pid "+strconv.Itoa(m.worker().Pid()))
	return nil
}
