package server

import (
	"net"
	"strings"
	"time"
)

// sd_notify(3), written by hand: one datagram per message to the socket
// named by NOTIFY_SOCKET ("@name" for the abstract namespace).

const envNotifySocket = "NOTIFY_SOCKET"

// notify sends state to the service manager, if there is one.
func (s *Server) notify(state ...string) {
	if s.notifySocket == "" {
		return
	}
	msg := strings.Join(state, "\n")
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: s.notifySocket, Net: "unixgram"})
	if err == nil {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		_, err = c.Write([]byte(msg))
		c.Close()
	}
	if err != nil {
		s.log.Warn().Err(err).Str("state", msg).Msg("cannot notify the service manager")
	}
}

// notifyStopping says once that this process is going away for good.
func (s *Server) notifyStopping(reason string) {
	if s.stopNotified.CompareAndSwap(false, true) {
		s.notify("STOPPING=1", "STATUS=stopping ("+reason+")")
	}
}

// watchdog pings the service manager every half WATCHDOG_USEC until done.
func (s *Server) watchdog(every time.Duration, done <-chan struct{}) {
	t := time.NewTicker(every)
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
