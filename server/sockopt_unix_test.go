//go:build unix

package server

import (
	"syscall"

	"golang.org/x/sys/unix"
)

type syscallRawConn = syscall.RawConn

func setRcvbuf(rc syscall.RawConn, n int) error {
	var serr error
	err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n) })
	if err != nil {
		return err
	}
	return serr
}
