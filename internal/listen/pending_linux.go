package listen

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// pending returns how many received bytes wait unread in the kernel for
// nc: a client that has just sent a request, which a drain must not cut.
func pending(nc net.Conn) int {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	rc.Control(func(fd uintptr) {
		n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	})
	return n
}
