//go:build unix

package listen

import (
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Inherit adopts descriptor fd, passed by a parent process (or a service
// manager), as the socket called name. It checks that fd is an open socket
// of a kind a listener can have: a listening TCP or unix stream socket, or
// a UDP socket. It marks fd close-on-exec; the returned Socket (a
// net.Listener or a net.PacketConn) owns a duplicate and fd itself is
// closed. The socket ends in non-blocking mode: net.FileListener sets it,
// as Go's poller needs. The mode belongs to the socket, which parent and
// child share; a Go parent has it in that mode already, so nothing changes
// for it. A unix socket's file is never removed when the Socket is closed.
func Inherit(fd uintptr, name string) (Socket, error) {
	stream, err := checkSocket(int(fd))
	if err != nil {
		return nil, fmt.Errorf("listeners: inherit %q from fd %d: %w", name, fd, err)
	}
	unix.CloseOnExec(int(fd))
	f := os.NewFile(fd, name)
	defer f.Close()
	if !stream {
		pc, err := net.FilePacketConn(f)
		if err != nil {
			return nil, fmt.Errorf("listeners: inherit %q from fd %d: %w", name, fd, err)
		}
		return pc, nil
	}
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("listeners: inherit %q from fd %d: %w", name, fd, err)
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	return ln, nil
}

// checkSocket checks fd and reports whether it is a stream socket.
func checkSocket(fd int) (stream bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, err // EBADF: "bad file descriptor"
	}
	if uint32(st.Mode)&unix.S_IFMT != unix.S_IFSOCK {
		return false, fmt.Errorf("%w: it is a %s", ErrNotListener, fileType(uint32(st.Mode)))
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return false, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return false, err
	}
	inet := false
	switch sa.(type) {
	case *unix.SockaddrInet4, *unix.SockaddrInet6:
		inet = true
	case *unix.SockaddrUnix:
	default:
		return false, fmt.Errorf("%w: socket family is not IPv4, IPv6 or unix (%T)", ErrNotListener, sa)
	}
	switch {
	case typ == unix.SOCK_DGRAM && inet:
		return false, nil
	case typ != unix.SOCK_STREAM:
		return false, fmt.Errorf("%w: socket type %d is neither a stream nor a UDP socket", ErrNotListener, typ)
	}
	acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return false, err
	}
	if acc == 0 {
		return false, fmt.Errorf("%w: the socket is not listening (a connected socket?)", ErrNotListener)
	}
	return true, nil
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "regular file"
	case unix.S_IFIFO:
		return "pipe"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFLNK:
		return "symlink"
	}
	return fmt.Sprintf("file of mode %#o", mode&unix.S_IFMT)
}

// Export duplicates the descriptor of sock for a child process. The
// duplicate is close-on-exec (os.StartProcess clears that on the
// descriptors it passes) and shares the socket's non-blocking mode, which
// it does not change.
func Export(sock Socket, name string) (*os.File, error) {
	sc, ok := sock.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("listeners: export %q: %T has no descriptor", name, sock)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("listeners: export %q: %w", name, err)
	}
	var dup int
	var dupErr error
	if err := rc.Control(func(fd uintptr) {
		dup, dupErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, fmt.Errorf("listeners: export %q: %w", name, err)
	}
	if dupErr != nil {
		return nil, fmt.Errorf("listeners: export %q: dup: %w", name, dupErr)
	}
	return os.NewFile(uintptr(dup), name), nil
}
