package protocol

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrActivation reports malformed socket-activation variables.
var ErrActivation = errors.New("order: bad socket activation variables")

// Activation is what a service manager passed: Len() descriptors from
// FirstFD on, each with a name ("" when the manager gave none).
type Activation struct {
	names []string
}

// ParseActivation decodes the socket-activation variables for the process
// pid. It reports ok=false, with no error, when listenPID is empty or names
// another process: those descriptors are not this process's. A count that is
// not a number, a name list of the wrong length and the like are errors.
func ParseActivation(pid int, listenPID, listenFDs, listenFDNames string) (a Activation, ok bool, err error) {
	if listenPID == "" {
		return Activation{}, false, nil
	}
	p, err := strconv.Atoi(listenPID)
	if err != nil || p <= 0 {
		return Activation{}, false, fmt.Errorf("%w: %s=%q is not a pid", ErrActivation, EnvListenPID, listenPID)
	}
	if p != pid {
		return Activation{}, false, nil
	}
	n, err := strconv.Atoi(listenFDs)
	if err != nil || n < 0 {
		return Activation{}, false, fmt.Errorf("%w: %s=%q is not a count", ErrActivation, EnvListenFDs, listenFDs)
	}
	if n > MaxNames {
		return Activation{}, false, fmt.Errorf("%w: %s=%d > %d", ErrActivation, EnvListenFDs, n, MaxNames)
	}
	names := make([]string, n)
	if listenFDNames != "" {
		given := strings.Split(listenFDNames, ":")
		if len(given) != n {
			return Activation{}, false, fmt.Errorf("%w: %s names %d descriptors, %s=%d",
				ErrActivation, EnvListenFDNames, len(given), EnvListenFDs, n)
		}
		for i, name := range given {
			if !defaultName(name) {
				names[i] = name
			}
		}
	}
	return Activation{names: names}, true, nil
}

// defaultName reports whether name is one a service manager gives a
// descriptor nobody named: systemd's "unknown", "stored" and "connection",
// or a socket unit's own name ("app.socket", FileDescriptorName='s
// default).
func defaultName(name string) bool {
	switch name {
	case "", "unknown", "stored", "connection":
		return true
	}
	return strings.HasSuffix(name, ".socket")
}

// Len is the number of descriptors passed.
func (a Activation) Len() int { return len(a.names) }

// Name returns the name of the i-th descriptor (FirstFD+i), or "".
func (a Activation) Name(i int) string { return a.names[i] }

// Assign maps each passed descriptor to a declared listener. A named
// descriptor goes to the listener of that name, and to no other: a socket
// the operator named "metrics" is never served as "admin". Unnamed
// descriptors (see defaultName) go, in order, to the declared listeners
// still without one. It returns the listener name of each descriptor
// index ("" for a descriptor no listener takes).
func (a Activation) Assign(declared []string) []string {
	out := make([]string, len(a.names))
	taken := make(map[string]bool, len(declared))
	isDeclared := make(map[string]bool, len(declared))
	for _, d := range declared {
		isDeclared[d] = true
	}
	for i, name := range a.names {
		if name != "" && isDeclared[name] && !taken[name] {
			out[i] = name
			taken[name] = true
		}
	}
	next := 0
	for i, name := range a.names {
		if name != "" {
			continue
		}
		for next < len(declared) && taken[declared[next]] {
			next++
		}
		if next == len(declared) {
			break
		}
		out[i] = declared[next]
		taken[declared[next]] = true
	}
	return out
}
