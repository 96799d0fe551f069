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
	// ErrNotListener: an inherited descriptor is not a listening TCP socket.
	ErrNotListener = errors.New("not a listening TCP socket")
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

// Bind listens on the TCP address addr.
func Bind(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", addr)
}

// SameAddr reports whether a listener bound at got serves the address want
// was declared with, so an inherited socket can be kept. A declared port 0
// accepts whatever port the socket has; an empty or unspecified host
// matches only a socket bound to all addresses.
func SameAddr(want string, got net.Addr) bool {
	ta, ok := got.(*net.TCPAddr)
	if !ok {
		return false
	}
	host, port, err := net.SplitHostPort(want)
	if err != nil {
		return false
	}
	p, err := resolvePort(port)
	if err != nil || (p != 0 && p != ta.Port) {
		return false
	}
	if host == "" {
		return ta.IP.IsUnspecified()
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.Equal(ta.IP) || (ip.IsUnspecified() && ta.IP.IsUnspecified())
	}
	ips, err := net.DefaultResolver.LookupIP(context.Background(), "ip", host)
	if err != nil {
		return false
	}
	for _, ip := range ips {
		if ip.Equal(ta.IP) {
			return true
		}
	}
	return false
}
