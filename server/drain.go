package server

import (
	"context"
	"sync"
	"time"

	"github.com/handoff-go/handoff/internal/listen"
)

const (
	// sweepEvery is the shortest time between two sweeps of a drain, and
	// how often it sweeps while HTTP/2 connections move through their
	// GOAWAY steps.
	sweepEvery = 20 * time.Millisecond
	// sweepIdle is the longest: a drain waiting for long requests sleeps
	// until something it waits for ends (wakeDrain), and looks by itself
	// only this seldom, which bounds what a missed wake-up could cost.
	// Every wake-up of an idle Go process rouses its runtime threads: at
	// four a second (the old bound, 250 ms), the old process of a restart
	// that waited for 2-second requests spent 1.5-2 ms of CPU per second
	// of its drain, where a process that sleeps spends nothing.
	sweepIdle = 5 * time.Second
	// finWait is how long a half-closed idle connection may take to be
	// closed by its client before it is closed from this side.
	finWait = time.Second
	// lateHandlers bounds the wait, after hammer time, for handlers to
	// notice that their connections and contexts are gone.
	lateHandlers = time.Second
)

// drain runs once quit is closed: stop accepting, tell every connection,
// wait for them to finish, hammer what is left at hammer time.
//
// Hammer time is a bound no client can defeat: it has a timer of its own,
// it takes no lock a blocked writer may hold, and it closes connections
// below TLS, which ends any write in progress. The sweeps themselves never
// block: whatever may wait on a client runs on a goroutine of its own.
func (s *Server) drain() {
	s.mu.Lock()
	services, reason, handedOff := s.services, s.reason, s.handedOff
	s.mu.Unlock()
	if !handedOff {
		s.notifyStopping(reason)
	}
	start := time.Now()
	s.drainStart.Store(start.UnixNano())
	s.log.Info().Str("reason", reason).Strs("listeners", names(services)).
		Dur("hammer_time", s.cfg.hammerTime).Msg("draining")
	for _, svc := range services {
		svc.stopAccepting()
	}
	for _, svc := range services {
		svc.startDrain()
	}
	s.hj.Drain()

	hammered := make(chan struct{})
	var once sync.Once
	hammer := func(why string) {
		once.Do(func() {
			s.log.Warn().Str("why", why).Msg("hammer time")
			s.hammer(services)
			close(hammered)
		})
	}
	timer := time.AfterFunc(s.cfg.hammerTime, func() { hammer("the drain took longer than hammer time") })
	defer timer.Stop()
	drained := make(chan struct{})
	defer close(drained)
	go func() {
		select {
		case <-s.hammerCh:
			hammer("hammer requested")
		case <-drained:
		}
	}()

	wasHammered := !s.waitDrained(services, hammered, time.Time{})
	if wasHammered {
		// Closed connections and cancelled contexts end well-behaved
		// handlers at once; give them a moment to say so.
		s.waitDrained(services, nil, time.Now().Add(lateHandlers))
	}
	ctx, cancel := context.WithTimeout(context.Background(), lateHandlers)
	if err := s.hj.WaitHooks(ctx); err != nil {
		s.log.Warn().Msg("shutdown callbacks still running after the drain")
	}
	cancel()
	for _, svc := range services {
		svc.release()
	}
	s.drainTook.Store(int64(time.Since(start)))
	s.log.Info().Dur("took", time.Since(start)).Bool("hammered", wasHammered).
		Int64("hammered_conns", s.hammered.Load()).Msg("drained")

	s.mu.Lock()
	s.closeDrainedLocked()
	s.mu.Unlock()
}

// waitDrained sweeps until nothing is left open, and reports whether that
// happened; it gives up when stop is closed or at deadline (if not zero).
//
// A drain may wait minutes for long requests. It does not poll for them:
// it sweeps when something it waits for ends (wakeDrain), when the sweep
// asked to be called again (an idle connection's grace running out, an
// HTTP/2 GOAWAY step), and otherwise every sweepIdle, never more often
// than every sweepEvery.
func (s *Server) waitDrained(services []*service, stop <-chan struct{}, deadline time.Time) bool {
	timer := time.NewTimer(sweepIdle)
	defer timer.Stop()
	for {
		if testHookSweep != nil {
			testHookSweep()
		}
		now := time.Now()
		n, next := s.openLeft(services, now)
		if n == 0 {
			return true
		}
		wait := sweepIdle
		if !next.IsZero() {
			wait = min(wait, next.Sub(now))
		}
		if !deadline.IsZero() {
			if !now.Before(deadline) {
				return false
			}
			wait = min(wait, deadline.Sub(now))
		}
		timer.Reset(max(wait, 0))
		select {
		case <-timer.C:
		case <-s.wake:
			// Gather what ends together into one sweep.
			if rest := sweepEvery - time.Since(now); rest > 0 {
				timer.Reset(rest)
				select {
				case <-timer.C:
				case <-stop:
					return false
				}
			}
		case <-stop:
			return false
		}
	}
}

// testHookSweep, if set, is called at each sweep of a drain.
var testHookSweep func()

// wakeDrain tells a drain that something it waits for may have ended. It
// never blocks: outside a drain the channel's one slot is full and the
// send fails at once.
func (s *Server) wakeDrain() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// openLeft sweeps idle connections and counts what the drain waits for;
// next is when a sweep is next due without a wake-up (zero: none is).
func (s *Server) openLeft(services []*service, now time.Time) (n int, next time.Time) {
	n = s.hj.Len() + int(s.inflight.Load())
	for _, svc := range services {
		next = listen.Earliest(next, svc.sweep(now, s.cfg.idleGrace))
		n += svc.open()
	}
	return n, next
}

func (s *Server) hammer(services []*service) {
	n := 0
	for _, svc := range services {
		n += svc.hammer()
	}
	n += s.hj.Hammer(ErrHammered)
	s.hammered.Add(int64(n))
	s.log.Warn().Int("closed", n).Msg("hammered open connections")
}
