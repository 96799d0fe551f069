//go:build unix

package listen

import (
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Inherit adopts descriptor fd, passed by a parent process, as the
// listener called name. It checks that fd is an open, listening TCP socket
// (IPv4 or IPv6) and marks it close-on-exec. The returned listener owns a
// duplicate; fd itself is closed. The socket ends in non-blocking mode:
// net.FileListener sets it, as Go's poller needs. The mode belongs to the
// socket, which parent and child share; a Go parent has it in that mode
// already, so nothing changes for it.
func Inherit(fd uintptr, name string) (net.Listener, error) {
	if err := checkListening(int(fd)); err != nil {
		return nil, fmt.Errorf("listeners: inherit %q from fd %d: %w", name, fd, err)
	}
	unix.CloseOnExec(int(fd))
	f := os.NewFile(fd, name)
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("listeners: inherit %q from fd %d: %w", name, fd, err)
	}
	return ln, nil
}

func checkListening(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err // EBADF: "bad file descriptor"
	}
	if uint32(st.Mode)&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("%w: it is a %s", ErrNotListener, fileType(uint32(st.Mode)))
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return err
	}
	if typ != unix.SOCK_STREAM {
		return fmt.Errorf("%w: socket type %d is not a stream", ErrNotListener, typ)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return err
	}
	switch sa.(type) {
	case *unix.SockaddrInet4, *unix.SockaddrInet6:
	default:
		return fmt.Errorf("%w: socket family is not IPv4 or IPv6 (%T)", ErrNotListener, sa)
	}
	acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return err
	}
	if acc == 0 {
		return fmt.Errorf("%w: the socket is not listening (a connected socket?)", ErrNotListener)
	}
	return nil
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

// Export duplicates the socket of ln for a child process. The duplicate is
// close-on-exec (os.StartProcess clears that on the descriptors it passes)
// and shares the socket's non-blocking mode, which it does not change.
func Export(ln net.Listener, name string) (*os.File, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("listeners: export %q: %T has no descriptor", name, ln)
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
