//go:build unix

package server

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/listen"
	"github.com/handoff-go/handoff/internal/osx"
	"github.com/handoff-go/handoff/internal/protocol"
)

// handOff is Restart in a process that serves its own listeners.
func (s *Server) handOff() error {
	if err := s.claimRestart(); err != nil {
		return err
	}
	defer s.endRestart()
	s.mu.Lock()
	services := s.services
	gen := s.generation + 1
	s.mu.Unlock()

	s.log.Info().Strs("listeners", names(services)).Msg("restart requested")
	s.notifyReloading()
	start := time.Now()
	child, ready, err := s.startChild(socketsOf(services), gen, nil, nil)
	if err != nil {
		s.log.Error().Err(err).Msg("restart failed; still serving")
		return s.restartFailed(err)
	}
	s.log.Info().Int("child", child.Pid()).Int("generation", gen).Msg("child started")
	staged := s.stagePIDFile(child.Pid())
	defer staged.discard()
	if err := s.awaitReady(child, ready); err != nil {
		s.log.Error().Err(err).Int("child", child.Pid()).Msg("restart failed; still serving")
		return s.restartFailed(err)
	}
	// The PID file names the child only now that it serves, so a reader
	// that sees it change knows the restart worked. A process whose PID
	// file cannot be written does not take over.
	if err := s.commitPIDFile(staged, child.Pid()); err != nil {
		child.Signal(syscall.SIGTERM)
		s.log.Error().Err(err).Int("child", child.Pid()).Msg("restart failed; stopping the child; still serving")
		return s.restartFailed(err)
	}
	s.mu.Lock()
	stopping := s.stopping.Load() || s.draining.Load()
	if !stopping {
		s.handedOff = true
		s.closeQuitLocked(fmt.Sprintf("handoff to pid %d", child.Pid()))
	}
	s.mu.Unlock()
	if stopping {
		// A stop was asked for while the child came up: the service is
		// meant to stop, so the child must too, gracefully.
		s.writePIDFile()
		s.log.Warn().Int("child", child.Pid()).Msg("stop requested during the restart; stopping the child")
		child.Signal(syscall.SIGTERM)
		return fmt.Errorf("%w: %w", ErrRestartFailed, ErrStopping)
	}
	// This process is still the main one, so the manager accepts the new
	// main pid from it whatever its NotifyAccess= says.
	s.restartsOK.Add(1)
	s.notify("MAINPID="+strconv.Itoa(child.Pid()), "READY=1", "STATUS=serving, handed over by pid "+strconv.Itoa(s.sys.Getpid()))
	s.log.Info().Int("child", child.Pid()).Dur("took", time.Since(start)).Msg("child ready")
	return nil
}

// socket is a listening socket and the name it is handed on under.
type socket struct {
	name string
	ln   listen.Socket
}

func socketsOf(services []*service) []socket {
	out := make([]socket, len(services))
	for i, svc := range services {
		out[i] = socket{svc.name, svc.raw}
	}
	return out
}

// claimRestart makes this the one restart in progress, or says why not. A
// restart asked for while the process is still starting (a SIGHUP sent as
// soon as the PID file named it) waits until it serves.
func (s *Server) claimRestart() error {
	s.mu.Lock()
	if s.phase == phaseStarting {
		s.mu.Unlock()
		select {
		case <-s.serving:
		case <-s.quit:
		}
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	switch {
	case s.phase != phaseServing:
		s.log.Warn().Msg("restart requested while not serving; ignored")
		return ErrNotServing
	case s.draining.Load():
		s.log.Warn().Msg("restart requested while draining; ignored")
		return ErrDraining
	case s.stopping.Load():
		s.log.Warn().Msg("restart requested while stopping; ignored")
		return ErrStopping
	case s.restarting:
		s.log.Warn().Msg("restart requested while one is in progress; ignored")
		return ErrRestartInProgress
	}
	s.restarting = true
	return nil
}

func (s *Server) endRestart() {
	s.mu.Lock()
	s.restarting = false
	s.mu.Unlock()
}

// notifyReloading tells the service manager that a restart starts.
func (s *Server) notifyReloading() {
	s.notify("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(monotonicUsec(), 10), "STATUS=restarting")
}

// restartFailed tells the service manager that the restart failed and
// this process serves on (unless it is stopping: a manager told STOPPING=1
// must not hear READY=1 again), and wraps err for the caller.
func (s *Server) restartFailed(err error) error {
	s.restartsBad.Add(1)
	if !s.stopping.Load() && !s.draining.Load() {
		s.notify("READY=1", "STATUS=restart failed, still serving: "+err.Error())
	}
	return fmt.Errorf("%w: %w", ErrRestartFailed, err)
}

// startChild exports every socket and starts the program (see program)
// with them. The child's environment is this one's as it is now, less the
// handoff variables and drop, passed through WithChildEnv's function if
// there is one, plus the handoff variables and extra.
func (s *Server) startChild(socks []socket, gen int, extra, drop []string) (osx.Process, *os.File, error) {
	exe, err := s.program()
	if err != nil {
		return nil, nil, err
	}
	dir := s.startDir()
	files := []*os.File{os.Stdin, os.Stdout, os.Stderr}
	defer func() {
		for _, f := range files[3:] {
			f.Close()
		}
	}()
	names := make([]string, 0, len(socks))
	for _, sk := range socks {
		f, err := listen.Export(sk.ln, sk.name)
		if err != nil {
			return nil, nil, err
		}
		files = append(files, f)
		names = append(names, sk.name)
	}
	m, err := protocol.New(names...)
	if err != nil {
		return nil, nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("readiness pipe: %w", err)
	}
	files = append(files, w)
	s.mu.Lock()
	passed := append([]passedFile(nil), s.passed...)
	s.mu.Unlock()
	var passedNames []string
	for _, p := range passed {
		f, err := listen.Export(p.f, p.name)
		if err != nil {
			r.Close()
			return nil, nil, err
		}
		files = append(files, f)
		passedNames = append(passedNames, p.name)
	}
	env := dropEnv(s.sys.Environ(), drop)
	if s.cfg.childEnv != nil {
		env = s.cfg.childEnv(withoutHandoff(env))
	}
	env = append(childEnv(env, m, s.sys.Getpid(), gen), extra...)
	if fam := s.familyForChild(); fam != nil {
		env = append(env, protocol.EnvFamily+"="+hex.EncodeToString(fam))
	}
	var activated []string
	for _, n := range names {
		if s.activated[n] {
			activated = append(activated, n)
		}
	}
	if len(activated) > 0 {
		env = append(env, protocol.EnvActivated+"="+strings.Join(activated, ","))
	}
	if e := filesEnv(passedNames); e != "" {
		env = append(env, e)
	}
	p, err := s.sys.Start(exe, s.args, env, dir, files)
	if err != nil {
		r.Close()
		return nil, nil, fmt.Errorf("start %s: %w", exe, err)
	}
	return p, r, nil
}

// dropEnv is env without the variables named in drop.
func dropEnv(env, drop []string) []string {
	if len(drop) == 0 {
		return env
	}
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(drop, k) {
			out = append(out, kv)
		}
	}
	return out
}

// withoutHandoff is env without any variable of an earlier handoff or
// socket activation: none of them is meant for a child.
func withoutHandoff(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case protocol.EnvOrder, protocol.EnvParentPID, protocol.EnvGeneration, protocol.EnvActivated, protocol.EnvFiles, protocol.EnvFamily,
			protocol.EnvMasterPID, protocol.EnvListenPID, protocol.EnvListenFDs, protocol.EnvListenFDNames,
			protocol.EnvWatchdogPID:
			continue
		}
		out = append(out, kv)
	}
	return out
}

// childEnv is env without any handoff variable, plus the manifest, this
// pid and the child's generation.
func childEnv(env []string, m protocol.Manifest, pid, gen int) []string {
	out := withoutHandoff(env)
	return append(out,
		protocol.EnvOrder+"="+m.String(),
		protocol.EnvParentPID+"="+strconv.Itoa(pid),
		protocol.EnvGeneration+"="+strconv.Itoa(gen),
	)
}

// awaitReady waits for the child's readiness message, its exit, the ready
// timeout, or a stop of this process, whichever comes first. A child given
// up on is killed and reaped; the error carries its exit status.
//
// The child's exit is watched by itself, not only through the pipe: a
// process the child started may hold the pipe open after the child died.
func (s *Server) awaitReady(child osx.Process, ready *os.File) error {
	got := make(chan error, 1)
	go func() {
		buf := make([]byte, len(protocol.ReadyMessage))
		_, err := io.ReadFull(ready, buf)
		if err == nil && string(buf) != protocol.ReadyMessage {
			err = fmt.Errorf("unexpected readiness message %q", buf)
		}
		got <- err
	}()
	readerDone := false
	giveUp := func(why error) error {
		if exited, _ := child.Poll(); !exited {
			child.Kill()
		}
		status := child.Wait()
		ready.Close() // ends the reader, if it still waits
		if !readerDone {
			<-got
		}
		if status != nil {
			return fmt.Errorf("%w (%v)", why, status)
		}
		return why
	}
	timer := time.NewTimer(s.cfg.readyTimeout)
	defer timer.Stop()
	// The exit is watched only once the child has had exitWatchAfter to
	// get ready, which most children are well within: setting a watch up
	// costs the parent CPU that the serving processes could use. It is
	// watched where the system can tell of it (a pidfd on Linux), and
	// polled for elsewhere, every exitPoll.
	watchSoon := time.NewTimer(exitWatchAfter)
	defer watchSoon.Stop()
	var exit <-chan struct{}
	var poll <-chan time.Time
	stopWatch := func() {}
	defer func() { stopWatch() }()
	for {
		select {
		case err := <-got:
			readerDone = true
			switch {
			case err == nil:
				ready.Close()
				return nil
			case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
				// The child closed the pipe: it is exiting. Give it a
				// moment to, so that its own status is reported.
				s.awaitExit(child, exitGrace)
				return giveUp(ErrChildExited)
			default:
				return giveUp(err)
			}
		case <-watchSoon.C:
			exit, stopWatch = watchExit(child)
			if exit == nil {
				t := time.NewTicker(exitPoll)
				poll, stopWatch = t.C, t.Stop
			}
		case <-exit:
			return giveUp(ErrChildExited)
		case <-poll:
			if exited, _ := child.Poll(); exited {
				return giveUp(ErrChildExited)
			}
		case <-timer.C:
			return giveUp(fmt.Errorf("%w: %v", ErrChildTimeout, s.cfg.readyTimeout))
		case <-s.quit:
			return giveUp(ErrDraining)
		}
	}
}

// watchExit returns a channel closed once p has exited, if p can tell (a
// process started by osx on Linux, through a pidfd), and the function
// that ends the watch.
func watchExit(p osx.Process) (<-chan struct{}, func()) {
	if w, ok := p.(interface {
		WatchExit() (<-chan struct{}, func())
	}); ok {
		return w.WatchExit()
	}
	return nil, func() {}
}

// exitWatchAfter is how long a starting child goes unwatched; a variable
// so that tests can change it.
var exitWatchAfter = 200 * time.Millisecond

const (
	// exitPoll is how often a restart looks whether its child has exited,
	// where it cannot be told.
	exitPoll = 20 * time.Millisecond
	// exitGrace is how long a child that closed its readiness pipe without
	// a word gets to exit by itself, so its own status is reported.
	exitGrace = time.Second
)

// awaitExit waits until p has exited, d has passed or a stop starts.
func (s *Server) awaitExit(p osx.Process, d time.Duration) {
	t := time.NewTicker(exitPoll)
	defer t.Stop()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		if exited, _ := p.Poll(); exited {
			return
		}
		select {
		case <-t.C:
		case <-s.quit:
			return
		}
	}
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, as RELOADING=1 wants.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}
