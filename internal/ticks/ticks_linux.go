package ticks

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// newSystem returns ticks from a timerfd, or nil if none can be had.
func newSystem(d time.Duration) Ticks {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil
	}
	every := unix.NsecToTimespec(int64(d))
	if err := unix.TimerfdSettime(fd, 0, &unix.ItimerSpec{Interval: every, Value: every}, nil); err != nil {
		unix.Close(fd)
		return nil
	}
	// Non-blocking, so os.NewFile gives it to the network poller: a read
	// waits there, and Close wakes it.
	return fdTicks{os.NewFile(uintptr(fd), "timerfd")}
}

type fdTicks struct{ f *os.File }

func (t fdTicks) Wait() bool {
	var n [8]byte // how many periods have passed since the last read
	_, err := t.f.Read(n[:])
	return err == nil
}

func (t fdTicks) Close() { t.f.Close() }
