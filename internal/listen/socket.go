package listen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
)

// Errors about sockets, wrapped with the listener's name and descriptor.
var (
	// ErrNotListener: an inherited descriptor is not a listening stream
	// socket (TCP or unix) or a bound UDP socket.
	ErrNotListener = errors.New("not a listening socket")
	// ErrUnsupported: the platform cannot pass sockets to a child.
	ErrUnsupported = errors.New("socket handoff is not supported on this platform")
)

// CheckAddr reports whether addr is a TCP address a listener can bind:
// "host:port", ":port" or "[v6]:port", with a port number or service name.
func CheckAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := resolvePort(port); err != nil {
		return err
	}
	if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		return fmt.Errorf("address %s: invalid host %q", addr, host)
	}
	return nil
}

func resolvePort(port string) (int, error) {
	if port == "" {
		return 0, errors.New("missing port")
	}
	if n, err := strconv.Atoi(port); err == nil {
		if n < 0 || n > 65535 {
			return 0, fmt.Errorf("port %d out of range", n)
		}
		return n, nil
	}
	return net.LookupPort("tcp", port)
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// Socket is a bound or inherited socket: a net.Listener for a stream
// socket, a net.PacketConn for a datagram one.
type Socket interface {
	Close() error
}

// AddrOf is the local address of sock.
func AddrOf(sock Socket) net.Addr {
	switch s := sock.(type) {
	case net.Listener:
		return s.Addr()
	case net.PacketConn:
		return s.LocalAddr()
	}
	return nil
}

// sameIPPort reports whether host:port in want names ip and port (see
// SameAddr).
func sameIPPort(want string, ip net.IP, port int) bool {
	host, p, err := net.SplitHostPort(want)
	if err != nil {
		return false
	}
	n, err := resolvePort(p)
	if err != nil || (n != 0 && n != port) {
		return false
	}
	if host == "" {
		return ip.IsUnspecified()
	}
	if want := net.ParseIP(host); want != nil {
		return want.Equal(ip) || (want.IsUnspecified() && ip.IsUnspecified())
	}
	ips, err := net.DefaultResolver.LookupIP(context.Background(), "ip", host)
	if err != nil {
		return false
	}
	for _, a := range ips {
		if a.Equal(ip) {
			return true
		}
	}
	return false
}
