package listen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// Bind opens a socket on a: a listener for tcp and unix, a packet
// connection for udp. A unix socket's file is never removed when the
// socket is closed (a new process may serve on it by then): see
// RemoveSocketFile. A stale socket file, one nothing accepts on, is
// replaced; one something accepts on is an error, as is a path that is not
// a socket.
func Bind(ctx context.Context, a Addr, fo FileOptions) (Socket, error) {
	var lc net.ListenConfig
	switch a.Network {
	case "udp":
		return lc.ListenPacket(ctx, "udp", a.Address)
	case "unix":
		if !a.Abstract() {
			if err := clearStale(a.Address); err != nil {
				return nil, err
			}
		}
		ln, err := lc.Listen(ctx, "unix", a.Address)
		if err != nil {
			return nil, err
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		if !a.Abstract() {
			if err := applyFileOptions(a.Address, fo); err != nil {
				ln.Close()
				os.Remove(a.Address)
				return nil, err
			}
		}
		return ln, nil
	}
	return lc.Listen(ctx, "tcp", a.Address)
}

// clearStale removes a unix socket file that nothing accepts on.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s: another process accepts on this socket", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: cannot tell whether the socket is in use: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing the stale socket %s: %w", path, err)
	}
	return nil
}

func applyFileOptions(path string, fo FileOptions) error {
	if fo.Mode != 0 {
		if err := os.Chmod(path, fo.Mode); err != nil {
			return err
		}
	}
	if fo.Owner {
		if err := os.Lchown(path, fo.UID, fo.GID); err != nil {
			return err
		}
	}
	return nil
}

// RemoveSocketFile removes the file of a unix socket at a, when the
// service that served it stops for good.
func RemoveSocketFile(a Addr) error {
	if a.Network != "unix" || a.Abstract() {
		return nil
	}
	err := os.Remove(a.Address)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
