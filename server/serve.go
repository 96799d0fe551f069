package server

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/handoff-go/handoff/internal/listen"
)

// ServeContext is Serve, with ctx as one more way to stop: cancelling it
// does what SIGTERM's default action does (the shutdown delay, if any,
// then the drain), and ServeContext returns nil once drained.
func (s *Server) ServeContext(ctx context.Context) error {
	stopped := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(stopped)
		s.currentRole().stop("context cancelled")
	})
	err := s.Serve()
	if !stop() {
		<-stopped // the stop ran; it ends with the drain
	}
	return err
}

// Serve opens every listener (inherited from a parent process, or bound
// fresh), serves until a shutdown or a handoff to a new process, drains,
// and returns. It returns nil when the server stopped as asked, whether
// the drain finished by itself or at hammer time.
//
// In a master, Serve starts the first worker and returns once the master
// was asked to stop and every worker has exited (nil), or once its worker
// died unasked (ErrWorkerExited), so that a supervisor restarts the
// service.
func (s *Server) Serve() error {
	s.mu.Lock()
	switch s.phase {
	case phaseNew:
	case phaseStopped:
		s.mu.Unlock()
		return ErrClosed
	default:
		s.mu.Unlock()
		return ErrServing
	}
	s.phase = phaseStarting
	s.mu.Unlock()

	if err := s.check(); err != nil {
		s.stop()
		return err
	}
	s.detectMaster()
	isMaster := s.masterMode()
	switch {
	case s.masterPID != 0:
		s.setRole(workerRole{serverRole{s}})
		s.routeWorkerSignals()
	case isMaster:
		// The master's own role is set once it has bound the sockets.
		s.routeMasterSignals()
	default:
		s.setRole(serverRole{s})
	}
	// Subscribed before anything is served or reported ready: a SIGTERM
	// or SIGHUP sent the moment the process is seen to serve must be
	// routed, not left to its default action (the end of the process).
	sigCtx, stopSignals := context.WithCancel(context.Background())
	sigDone, err := s.router.Start(sigCtx)
	if err != nil {
		stopSignals()
		s.stop()
		return fmt.Errorf("server: signals: %w", err)
	}
	defer func() {
		stopSignals()
		<-sigDone
	}()

	if isMaster {
		return s.serveMaster()
	}
	adopted, ready, gen, err := s.adopt()
	if err != nil {
		s.log.Error().Err(err).Msg("cannot adopt inherited listeners")
		s.stop()
		return err
	}
	services, err := s.open(adopted)
	if err != nil {
		if ready != nil {
			ready.Close()
		}
		s.log.Error().Err(err).Msg("cannot open listeners")
		s.stop()
		return err
	}

	// A process started by hand claims the PID file before it serves; a
	// restart's child has it written by its parent once it is ready.
	// A process that cannot claim it does not serve.
	if ready == nil {
		err = s.writePIDFile()
	}
	if err != nil {
		for _, svc := range services {
			svc.raw.Close()
			svc.release()
		}
		if ready != nil {
			ready.Close()
		}
		s.stop()
		return err
	}

	s.mu.Lock()
	s.services = services
	s.generation = gen
	s.mu.Unlock()

	var wg sync.WaitGroup
	errc := make(chan error, len(services))
	for _, svc := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := svc.serve(); err != nil {
				svc.log.Error().Err(err).Msg("listener failed")
				errc <- fmt.Errorf("server: listener %q: %w", svc.name, err)
				s.beginDrain("listener " + svc.name + " failed")
			}
		}()
	}
	if s.awaitAccepting(services) {
		s.mu.Lock()
		s.phase = phaseServing
		close(s.serving)
		s.mu.Unlock()
		if ready != nil {
			s.signalReady(ready)
		}
		s.log.Info().Strs("listeners", names(services)).Int("generation", gen).Msg("serving")
		if ready == nil {
			// A handoff child is announced by its parent (MAINPID=, READY=1).
			s.notify("READY=1", "STATUS=serving "+strings.Join(names(services), ", "))
		}
	} else if ready != nil {
		ready.Close() // the parent gives up on this process and serves on
	}
	watchdogDone := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.watchCerts(services, watchdogDone)
	}()
	if every := s.watchdogInterval(); every > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.watchdog(every, watchdogDone)
		}()
	}

	<-s.quit
	s.drain()
	close(watchdogDone)
	wg.Wait()
	s.removeSocketFiles()
	s.removePIDFile()
	s.closeUnclaimed()
	s.stop()
	s.log.Info().Msg("exited")
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func (s *Server) setRole(r role) {
	s.mu.Lock()
	s.role = r
	s.mu.Unlock()
}

// awaitAccepting waits until the program's own servers (listeners.Serve)
// have started to accept, and reports false if a listener failed first.
func (s *Server) awaitAccepting(services []*service) bool {
	for _, svc := range services {
		if svc.accepting == nil {
			continue
		}
		select {
		case <-svc.accepting:
		case <-s.quit:
			return false
		}
	}
	return true
}

// removeSocketFiles removes the files of the unix sockets this process
// served when it stops for good: not after a handoff (the new process
// serves on them), and not in a worker (its master holds them).
func (s *Server) removeSocketFiles() {
	s.mu.Lock()
	handedOff, services := s.handedOff, s.services
	s.mu.Unlock()
	if handedOff || s.masterPID != 0 {
		return
	}
	for _, svc := range services {
		if s.activated[svc.name] {
			continue // the service manager's: it removes what it made
		}
		if err := listen.RemoveSocketFile(svc.addr); err != nil {
			svc.log.Warn().Err(err).Msg("cannot remove the socket file")
		}
	}
}
