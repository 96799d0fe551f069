//go:build unix

package server

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/osx"
	"github.com/handoff-go/handoff/listeners"
	"github.com/handoff-go/handoff/order"
)

// Restart runs the program's binary, as it is on disk now, as a child
// process and hands it every listener. It returns nil once the child has
// reported that it serves; this process then drains and Serve returns.
// If the child exits, crashes, or is not ready within the ready timeout,
// it is killed and reaped, this process goes on serving, and the error
// says why. Only one restart runs at a time; SIGHUP calls Restart.
func (s *Server) Restart() error {
	if s.masterPID != 0 {
		return s.askMaster()
	}
	s.mu.Lock()
	m := s.master
	s.mu.Unlock()
	if m != nil {
		return m.restart()
	}
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
	failed := s.restartFailed
	child, ready, err := s.startChild(socketsOf(services), gen, nil, nil)
	if err != nil {
		s.log.Error().Err(err).Msg("restart failed; still serving")
		return failed(err)
	}
	s.log.Info().Int("child", child.Pid()).Int("generation", gen).Msg("child started")
	if err := s.awaitReady(child, ready); err != nil {
		s.writePIDFile() // the child may have claimed it before failing (logged if not)
		s.log.Error().Err(err).Int("child", child.Pid()).Msg("restart failed; still serving")
		return failed(err)
	}
	s.mu.Lock()
	s.handedOff = true
	s.mu.Unlock()
	// This process is still the main one, so the manager accepts the new
	// main pid from it whatever its NotifyAccess= says.
	s.notify("MAINPID="+strconv.Itoa(child.Pid()), "READY=1", "STATUS=serving, handed over by pid "+strconv.Itoa(s.sys.Getpid()))
	s.log.Info().Int("child", child.Pid()).Dur("took", time.Since(start)).Msg("child ready")
	if !s.beginDrain(fmt.Sprintf("handoff to pid %d", child.Pid())) {
		// A shutdown started while the child came up: the service is
		// meant to stop, so the child must too, gracefully.
		s.log.Warn().Int("child", child.Pid()).Msg("shutdown requested during the restart; stopping the child")
		child.Signal(syscall.SIGTERM)
	}
	return nil
}

// socket is a listening socket and the name it is handed on under.
type socket struct {
	name string
	ln   net.Listener
}

func socketsOf(services []*service) []socket {
	out := make([]socket, len(services))
	for i, svc := range services {
		out[i] = socket{svc.name, svc.raw}
	}
	return out
}

// claimRestart makes this the one restart in progress, or says why not.
func (s *Server) claimRestart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.phase != phaseServing:
		return ErrNotServing
	case s.draining.Load():
		s.log.Warn().Msg("restart requested while draining; ignored")
		return ErrDraining
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
// this process serves on, and wraps err for the caller.
func (s *Server) restartFailed(err error) error {
	s.notify("READY=1", "STATUS=restart failed, still serving: "+err.Error())
	return fmt.Errorf("%w: %w", ErrRestartFailed, err)
}

// startChild exports every socket and starts the binary with them. The
// child's environment is this one's, less drop, plus the handoff
// variables and extra.
func (s *Server) startChild(socks []socket, gen int, extra, drop []string) (osx.Process, *os.File, error) {
	exe, err := s.sys.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("locate the binary: %w", err)
	}
	dir, err := s.sys.Getwd()
	if err != nil {
		return nil, nil, fmt.Errorf("working directory: %w", err)
	}
	files := []*os.File{os.Stdin, os.Stdout, os.Stderr}
	defer func() {
		for _, f := range files[3:] {
			f.Close()
		}
	}()
	names := make([]string, 0, len(socks))
	for _, sk := range socks {
		f, err := listeners.Export(sk.ln, sk.name)
		if err != nil {
			return nil, nil, err
		}
		files = append(files, f)
		names = append(names, sk.name)
	}
	m, err := order.New(names...)
	if err != nil {
		return nil, nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("readiness pipe: %w", err)
	}
	files = append(files, w)
	env := append(childEnv(dropEnv(s.sys.Environ(), drop), m, s.sys.Getpid(), gen), extra...)
	var activated []string
	for _, n := range names {
		if s.activated[n] {
			activated = append(activated, n)
		}
	}
	if len(activated) > 0 {
		env = append(env, envActivated+"="+strings.Join(activated, ","))
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

// childEnv is env without any variable of an earlier handoff or socket
// activation, plus the manifest, this pid and the child's generation.
func childEnv(env []string, m order.Manifest, pid, gen int) []string {
	out := make([]string, 0, len(env)+3)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case order.EnvOrder, order.EnvParentPID, order.EnvGeneration, envActivated,
			order.EnvListenPID, order.EnvListenFDs, order.EnvListenFDNames, "WATCHDOG_PID":
			continue
		}
		out = append(out, kv)
	}
	return append(out,
		order.EnvOrder+"="+m.String(),
		order.EnvParentPID+"="+strconv.Itoa(pid),
		order.EnvGeneration+"="+strconv.Itoa(gen),
	)
}

// awaitReady waits for the child's readiness message, its death, the ready
// timeout, or a shutdown of this process, whichever comes first. A child
// given up on is killed and reaped.
func (s *Server) awaitReady(child osx.Process, ready *os.File) error {
	got := make(chan error, 1)
	go func() {
		buf := make([]byte, len(readyMessage))
		_, err := io.ReadFull(ready, buf)
		if err == nil && string(buf) != readyMessage {
			err = fmt.Errorf("unexpected readiness message %q", buf)
		}
		got <- err
	}()
	giveUp := func(why error) error {
		child.Kill()
		status := child.Wait()
		ready.Close()
		<-got
		if status != nil {
			return fmt.Errorf("%w (%v)", why, status)
		}
		return why
	}
	timer := time.NewTimer(s.cfg.readyTimeout)
	defer timer.Stop()
	select {
	case err := <-got:
		if err == nil {
			ready.Close()
			return nil
		}
		got <- nil // giveUp waits for the reader, which is done
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return giveUp(ErrChildExited)
		}
		return giveUp(err)
	case <-timer.C:
		return giveUp(fmt.Errorf("%w: %v", ErrChildTimeout, s.cfg.readyTimeout))
	case <-s.quit:
		return giveUp(ErrDraining)
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
