// Package sdnotify speaks sd_notify(3) to a service manager: one datagram
// per message to the socket NOTIFY_SOCKET names ("@name" for the abstract
// namespace), and the watchdog interval WATCHDOG_USEC asks for.
package sdnotify

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Notifier sends to one socket. The zero value, and a Notifier for the
// empty socket name, sends nothing: there is no service manager to tell.
type Notifier struct{ socket string }

// New returns a Notifier for the socket named socket.
func New(socket string) Notifier { return Notifier{socket} }

// Enabled reports whether there is a service manager to tell.
func (n Notifier) Enabled() bool { return n.socket != "" }

// Send sends the state assignments ("READY=1", "STATUS=…") as one message.
func (n Notifier) Send(state ...string) error {
	if n.socket == "" {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.socket, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(time.Second))
	_, err = c.Write([]byte(strings.Join(state, "\n")))
	return err
}

// WatchdogInterval is how often the process pid should ping the watchdog:
// half of WATCHDOG_USEC (usec), when set and meant for pid (WATCHDOG_PID,
// watchdogPID, empty or naming it). It is 0 when no ping is wanted, and
// an error says why a value was not understood.
func WatchdogInterval(usec, watchdogPID string, pid int) (time.Duration, error) {
	if usec == "" || watchdogPID != "" && watchdogPID != strconv.Itoa(pid) {
		return 0, nil
	}
	n, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("sdnotify: WATCHDOG_USEC=%q is not a positive number of microseconds", usec)
	}
	return time.Duration(n) * time.Microsecond / 2, nil
}
