package server

import (
	"context"
	"sync"
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

	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	wasHammered := false
	for !wasHammered && s.openLeft(services, time.Now()) > 0 {
		select {
		case <-tick.C:
		case <-hammered:
			wasHammered = true
		}
	}
	if wasHammered {
		// Closed connections and cancelled contexts end well-behaved
		// handlers at once; give them a moment to say so.
		deadline := time.Now().Add(lateHandlers)
		for s.openLeft(services, time.Now()) > 0 && time.Now().Before(deadline) {
			<-tick.C
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
	s.drainTook.Store(int64(time.Since(start)))
	s.log.Info().Dur("took", time.Since(start)).Bool("hammered", wasHammered).
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
	n += s.hj.Hammer(ErrHammered)
	s.hammered.Add(int64(n))
	s.log.Warn().Int("closed", n).Msg("hammered open connections")
}
