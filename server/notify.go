package server

import (
	"strings"
	"time"

	"github.com/handoff-go/handoff/internal/protocol"
	"github.com/handoff-go/handoff/internal/sdnotify"
	"github.com/handoff-go/handoff/internal/ticks"
)

// notify sends state to the service manager, if there is one.
func (s *Server) notify(state ...string) {
	if err := s.notifier.Send(state...); err != nil {
		s.log.Warn().Err(err).Str("state", strings.Join(state, "\n")).Msg("cannot notify the service manager")
	}
}

// notifyStopping says once that this process is going away for good.
func (s *Server) notifyStopping(reason string) {
	if s.stopNotified.CompareAndSwap(false, true) {
		s.notify("STOPPING=1", "STATUS=stopping ("+reason+")")
	}
}

// watchdogInterval is half of WATCHDOG_USEC when the service manager
// expects pings from this process, else 0.
func (s *Server) watchdogInterval() time.Duration {
	if !s.notifier.Enabled() {
		return 0
	}
	usec, _ := s.sys.LookupEnv(protocol.EnvWatchdogUSec)
	pid, _ := s.sys.LookupEnv(protocol.EnvWatchdogPID)
	every, err := sdnotify.WatchdogInterval(usec, pid, s.sys.Getpid())
	if err != nil {
		s.log.Warn().Err(err).Msg("ignoring the watchdog interval")
	}
	return every
}

// watchdog pings the service manager every interval until done.
func (s *Server) watchdog(every time.Duration, done <-chan struct{}) {
	t := ticks.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			s.notify("WATCHDOG=1")
		}
	}
}
