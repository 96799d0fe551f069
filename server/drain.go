package server

import (
	"context"
	"time"
)

const (
	// sweepEvery is the drain's polling period, as net/http polls idle
	// connections during Shutdown.
	sweepEvery = 20 * time.Millisecond
	// finWait is how long a half-closed idle connection may take to be
	// closed by its client before it is closed from this side.
	finWait = time.Second
	// lateHandlers bounds the wait, after hammer time, for handlers to
	// notice that their connections and contexts are gone.
	lateHandlers = time.Second
)

// drain runs once quit is closed: stop accepting, tell every connection,
// wait for them to finish, hammer what is left at hammer time.
func (s *Server) drain() {
	s.mu.Lock()
	services, reason, handedOff := s.services, s.reason, s.handedOff
	s.mu.Unlock()
	if !handedOff {
		s.notifyStopping(reason)
	}
	start := time.Now()
	s.log.Info().Str("reason", reason).Strs("listeners", names(services)).
		Dur("hammer_time", s.cfg.hammerTime).Msg("draining")
	for _, svc := range services {
		svc.stopAccepting()
	}
	for _, svc := range services {
		svc.startDrain()
	}
	s.hj.Drain()

	hammerAt := time.NewTimer(s.cfg.hammerTime)
	defer hammerAt.Stop()
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	hammered := false
	for !hammered {
		if s.openLeft(services, time.Now()) == 0 {
			break
		}
		select {
		case <-tick.C:
		case <-s.hammerCh:
			s.log.Warn().Msg("hammer requested")
			s.hammer(services)
			hammered = true
		case <-hammerAt.C:
			s.log.Warn().Dur("hammer_time", s.cfg.hammerTime).Msg("hammer time: drain took too long")
			s.hammer(services)
			hammered = true
		}
	}
	if hammered {
		// Closed connections and cancelled contexts end well-behaved
		// handlers at once; give them a moment to say so.
		deadline := time.Now().Add(lateHandlers)
		for s.openLeft(services, time.Now()) > 0 && time.Now().Before(deadline) {
			time.Sleep(sweepEvery)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), lateHandlers)
	if err := s.hj.WaitHooks(ctx); err != nil {
		s.log.Warn().Msg("shutdown callbacks still running after the drain")
	}
	cancel()
	for _, svc := range services {
		svc.release()
	}
	s.log.Info().Dur("took", time.Since(start)).Bool("hammered", hammered).
		Int64("hammered_conns", s.hammered.Load()).Msg("drained")

	s.mu.Lock()
	s.closeDrainedLocked()
	s.mu.Unlock()
}

// openLeft sweeps idle connections and counts what the drain waits for.
func (s *Server) openLeft(services []*service, now time.Time) int {
	n := s.hj.Len() + int(s.inflight.Load())
	for _, svc := range services {
		svc.sweep(now, s.cfg.idleGrace)
		n += svc.open()
	}
	return n
}

func (s *Server) hammer(services []*service) {
	n := 0
	for _, svc := range services {
		n += svc.hammer()
	}
	n += s.hj.Hammer()
	s.hammered.Add(int64(n))
	s.log.Warn().Int("closed", n).Msg("hammered open connections")
}
