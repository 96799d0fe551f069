package osx

import (
	"os"

	"golang.org/x/sys/unix"
)

// WatchExit tells when the process has exited, without reaping it and
// without polling: a pidfd becomes readable once the process is a zombie,
// and the runtime's poller waits for that as it waits for a socket. It
// returns a nil channel where the kernel has no pidfd_open (before 5.3),
// and the caller polls instead. stop ends the watch and waits for it; it
// may be called more than once.
func (p *process) WatchExit() (exited <-chan struct{}, stop func()) {
	// Opened under p.mu, so that the pid cannot be reaped (and reused by
	// another process) in between; once reaped, the exit is known.
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		ch := make(chan struct{})
		close(ch)
		return ch, func() {}
	}
	fd, err := unix.PidfdOpen(p.pid, unix.PIDFD_NONBLOCK)
	p.mu.Unlock()
	if err != nil {
		return nil, func() {}
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, func() {}
	}
	ch := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		// Only a readable pidfd ends the wait: an error of the look
		// itself must not pass for the exit, or the restart would give
		// up on (and kill) a child that is starting well.
		err := rc.Read(func(fd uintptr) bool {
			n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
			return err == nil && n > 0
		})
		if err == nil {
			close(ch)
		}
	}()
	return ch, func() {
		f.Close() // ends a Read in progress with an error
		<-ended
	}
}
