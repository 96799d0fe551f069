package listen

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// Addr is a listener's address: a network and where on it.
type Addr struct {
	// Network is "tcp", "unix" or "udp".
	Network string
	// Address is "host:port" for tcp and udp, a path for unix, or "@name"
	// for a Linux abstract unix socket.
	Address string
}

func (a Addr) String() string {
	if a.Network == "tcp" {
		return a.Address
	}
	return a.Network + ":" + a.Address
}

// Abstract reports whether a is a Linux abstract unix socket.
func (a Addr) Abstract() bool { return a.Network == "unix" && strings.HasPrefix(a.Address, "@") }

// maxUnixPath is the longest path a unix socket address holds (sun_path
// has 108 bytes, one of them for the terminating NUL).
const maxUnixPath = 107

// ErrScheme is returned for an address with a scheme handoff does not know.
var ErrScheme = errors.New("unknown address scheme (want host:port, tcp:, udp: or unix:)")

// ParseAddr parses a listener address: "host:port" or "tcp:host:port" (TCP),
// "udp:host:port" (UDP), "unix:/path/to.sock" or "unix:@name" (a unix
// stream socket; "@" is Linux's abstract namespace).
func ParseAddr(s string) (Addr, error) {
	scheme, rest, hasScheme := strings.Cut(s, ":")
	switch {
	case hasScheme && scheme == "unix":
		return unixAddr(rest)
	case hasScheme && (scheme == "tcp" || scheme == "udp"):
		if err := CheckAddr(rest); err != nil {
			return Addr{}, err
		}
		return Addr{Network: scheme, Address: rest}, nil
	case hasScheme && isScheme(scheme) && (strings.Contains(rest, ":") || strings.HasPrefix(rest, "/")):
		return Addr{}, fmt.Errorf("%q: %w", scheme, ErrScheme)
	}
	if err := CheckAddr(s); err != nil {
		return Addr{}, err
	}
	return Addr{Network: "tcp", Address: s}, nil
}

// isScheme reports whether s looks like a URL scheme rather than a host.
func isScheme(s string) bool {
	if s == "" || strings.ContainsAny(s, ".[]") {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-') {
			return false
		}
	}
	return true
}

func unixAddr(p string) (Addr, error) {
	switch {
	case p == "" || p == "@":
		return Addr{}, errors.New("unix: needs a path or @name")
	case len(p) > maxUnixPath:
		return Addr{}, fmt.Errorf("unix socket path %q is %d bytes, more than the %d a socket address holds", p, len(p), maxUnixPath)
	case strings.HasPrefix(p, "@"):
		return Addr{Network: "unix", Address: p}, nil
	}
	return Addr{Network: "unix", Address: p}, nil
}

// FileOptions are what a unix socket's file gets once bound.
type FileOptions struct {
	Mode     os.FileMode // applied when not zero
	Owner    bool        // apply UID and GID
	UID, GID int
}

// SameAddr reports whether a socket bound at got serves the declared
// address want, so that an inherited socket can be kept. A declared port
// 0 accepts whatever port the socket has; an empty or unspecified host
// matches only a socket bound to all addresses; a unix path must be the
// same (symlinks are not followed).
func SameAddr(want Addr, got net.Addr) bool {
	switch g := got.(type) {
	case *net.TCPAddr:
		return want.Network == "tcp" && sameIPPort(want.Address, g.IP, g.Port)
	case *net.UDPAddr:
		return want.Network == "udp" && sameIPPort(want.Address, g.IP, g.Port)
	case *net.UnixAddr:
		return want.Network == "unix" && want.Address == g.Name
	}
	return false
}
