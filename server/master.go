//go:build unix

package server

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/osx"
)

// Master mode keeps one pid for the life of the service. The first process
// binds the sockets and never serves: it starts a worker (this same
// program) with the sockets, as a restart would, forwards signals to it,
// and on SIGHUP starts a new worker and, once that one is ready, tells the
// old one to drain. A terminal, a container runtime or a supervisor that
// follows one pid sees the master throughout. As PID 1 it also reaps
// every orphan, as an init must.

// envMasterPID tells a worker which master started it.
const envMasterPID = "HANDOFF_MASTER_PID"

// masterMode reports whether this process is a master: asked to be, or
// PID 1; a worker never is.
func (s *Server) masterMode() bool {
	if s.masterPID != 0 {
		return false
	}
	return s.cfg.master || s.sys.Getpid() == 1
}

// detectMaster recognises a worker started by a master.
func (s *Server) detectMaster() {
	v, ok := s.sys.LookupEnv(envMasterPID)
	if !ok {
		return
	}
	s.sys.Unsetenv(envMasterPID)
	if pid, err := strconv.Atoi(v); err == nil && pid == s.sys.Getppid() {
		s.masterPID = pid
	}
}

// askMaster is Restart in a worker: the master does the restart.
func (s *Server) askMaster() error {
	s.log.Info().Int("master", s.masterPID).Msg("restart requested; asking the master")
	if err := syscall.Kill(s.masterPID, syscall.SIGHUP); err != nil {
		return fmt.Errorf("%w: signal the master: %w", ErrRestartFailed, err)
	}
	return nil
}

// worker is a worker process, reaped by the master's reaper.
type worker struct {
	osx.Process
	exited chan struct{}
	status error
}

func (w *worker) Wait() error {
	<-w.exited
	return w.status
}

// master is the state of a master process.
type master struct {
	s     *Server
	socks []socket

	mu      sync.Mutex // guards workers, current, gen
	workers map[int]*worker
	current *worker
	gen     int

	exits chan *worker // workers as they exit
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
	m := &master{s: s, workers: map[int]*worker{}, exits: make(chan *worker, 8)}
	for _, c := range picked {
		m.socks = append(m.socks, socket{c.decl.name, c.ln})
		s.log.Info().Str("listener", c.decl.name).Str("addr", c.ln.Addr().String()).
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
	s.master = m
	s.mu.Unlock()
	if err := s.writePIDFile(); err != nil {
		s.stop()
		return err
	}
	if err := m.spawn(); err != nil {
		s.log.Error().Err(err).Msg("first worker failed")
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
// worker's own exit.
func (m *master) run() error {
	s := m.s
	quit := s.quit
	var killAt <-chan time.Time
	for {
		select {
		case <-quit:
			quit = nil
			s.notifyStopping(s.reason)
			if w := m.worker(); w != nil {
				s.log.Info().Int("worker", w.Pid()).Msg("stopping the worker")
				w.Signal(syscall.SIGTERM)
			}
			// The worker hammers at hammer time; past that, it is stuck.
			killAt = time.After(s.cfg.hammerTime + 10*time.Second)
		case <-killAt:
			if w := m.worker(); w != nil {
				s.log.Error().Int("worker", w.Pid()).Msg("worker still running after hammer time; killing it")
				w.Kill()
			}
		case w := <-m.exits:
			if w != m.worker() {
				s.log.Info().Int("worker", w.Pid()).AnErr("status", w.status).Msg("old worker exited")
				continue
			}
			s.removePIDFile()
			s.stop()
			// A worker that exits 0 was asked to stop: Ctrl-C in a terminal
			// signals the worker and the master at once, and the worker
			// may finish first.
			if quit == nil || w.status == nil {
				s.log.Info().Int("worker", w.Pid()).Msg("worker stopped; master exiting")
				return nil
			}
			s.log.Error().Int("worker", w.Pid()).AnErr("status", w.status).Msg("worker exited unexpectedly; master exiting")
			return fmt.Errorf("%w: pid %d: %v", ErrWorkerExited, w.Pid(), w.status)
		}
	}
}

func (m *master) worker() *worker {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.current
}

// start starts a worker and registers it with the reaper before the
// reaper can see it exit.
func (m *master) start() (*worker, *os.File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	p, ready, err := m.s.startChild(m.socks, m.gen,
		[]string{envMasterPID + "=" + strconv.Itoa(m.s.sys.Getpid())},
		[]string{envNotifySocket, "WATCHDOG_USEC", "WATCHDOG_PID"})
	if err != nil {
		return nil, nil, err
	}
	w := &worker{Process: p, exited: make(chan struct{})}
	m.workers[p.Pid()] = w
	return w, ready, nil
}

// spawn starts a worker, waits until it is ready and makes it current;
// it returns the worker it replaced, if any.
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
	s.notify("READY=1", "STATUS=master serving through pid "+strconv.Itoa(m.worker().Pid()))
	return nil
}

// The signals a master sends: SIGWINCH tells a replaced worker to drain
// at once (no shutdown delay: it is not going out of rotation, the new
// worker is already serving), as nginx's master tells its workers; SIGUSR1
// and SIGUSR2 are forwarded for ReloadCerts and Hammer.
const (
	sigReplaced = syscall.SIGWINCH
	sigReload   = syscall.SIGUSR1
	sigHammer   = syscall.SIGUSR2
)

// forward sends sig to the current worker.
func (m *master) forward(sig syscall.Signal) error {
	w := m.worker()
	if w == nil {
		return ErrNotServing
	}
	return w.Signal(sig)
}

// reap reaps every child that exits, workers and orphans alike, and hands
// the workers' statuses to whoever waits for them.
func (m *master) reap(sigchld <-chan os.Signal, done <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if pid <= 0 || err != nil {
				break
			}
			m.mu.Lock()
			w := m.workers[pid]
			delete(m.workers, pid)
			m.mu.Unlock()
			if w == nil {
				m.s.log.Debug().Int("orphan", pid).Msg("reaped an orphan")
				continue
			}
			if !ws.Exited() || ws.ExitStatus() != 0 {
				w.status = errors.New(describe(ws))
			}
			close(w.exited)
			select {
			case m.exits <- w:
			case <-done:
				return
			}
		}
		select {
		case <-done:
			return
		case <-sigchld:
		case <-tick.C:
		}
	}
}

func describe(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "signal: " + ws.Signal().String()
	}
	return "exit status " + strconv.Itoa(ws.ExitStatus())
}
