package protocol

import (
	"errors"
	"fmt"
	"strings"
)

const (
	// FirstFD is the descriptor of the first inherited listener; 0, 1 and
	// 2 are stdin, stdout and stderr.
	FirstFD = 3
	// MaxNameLen is the longest accepted listener name, in bytes.
	MaxNameLen = 64
	// MaxNames bounds a manifest, so a corrupt variable cannot make a
	// process walk through thousands of descriptors.
	MaxNames = 256
)

// Errors returned by the parsers, wrapped with the offending item.
var (
	ErrEmpty     = errors.New("order: empty manifest")
	ErrEmptyName = errors.New("order: empty name")
	ErrBadName   = errors.New("order: invalid name")
	ErrDuplicate = errors.New("order: duplicate name")
	ErrTooMany   = errors.New("order: too many names")
)

// Manifest is an ordered list of listener names; the i-th name is carried
// by descriptor FirstFD+i. The zero value is an empty manifest.
type Manifest struct {
	names []string
}

// New builds a manifest from names, checking each of them.
func New(names ...string) (Manifest, error) {
	if len(names) > MaxNames {
		return Manifest{}, fmt.Errorf("%w: %d > %d", ErrTooMany, len(names), MaxNames)
	}
	seen := make(map[string]struct{}, len(names))
	for i, name := range names {
		if err := CheckName(name); err != nil {
			return Manifest{}, fmt.Errorf("item %d: %w", i, err)
		}
		if _, dup := seen[name]; dup {
			return Manifest{}, fmt.Errorf("%w: %q", ErrDuplicate, name)
		}
		seen[name] = struct{}{}
	}
	return Manifest{names: append([]string(nil), names...)}, nil
}

// Parse decodes the value of EnvOrder.
func Parse(s string) (Manifest, error) {
	if s == "" {
		return Manifest{}, ErrEmpty
	}
	if n := strings.Count(s, ",") + 1; n > MaxNames {
		return Manifest{}, fmt.Errorf("%w: %d > %d", ErrTooMany, n, MaxNames)
	}
	return New(strings.Split(s, ",")...)
}

// CheckName reports whether name may name a listener.
func CheckName(name string) error {
	if name == "" {
		return ErrEmptyName
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: %.16q… is longer than %d bytes", ErrBadName, name, MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return fmt.Errorf("%w: %q has %q at offset %d (allowed: letters, digits, '.', '_', '-')",
				ErrBadName, name, name[i], i)
		}
	}
	return nil
}

func nameByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' ||
		b == '.' || b == '_' || b == '-'
}

// String encodes m as the value of EnvOrder.
func (m Manifest) String() string { return strings.Join(m.names, ",") }

// Len is the number of names, and so of inherited listener descriptors.
func (m Manifest) Len() int { return len(m.names) }

// Names returns a copy of the names in descriptor order.
func (m Manifest) Names() []string { return append([]string(nil), m.names...) }

// FD returns the descriptor that carries name.
func (m Manifest) FD(name string) (uintptr, bool) {
	for i, n := range m.names {
		if n == name {
			return uintptr(FirstFD + i), true
		}
	}
	return 0, false
}

// ReadyFD is the descriptor of the readiness pipe, which follows the last
// listener: the child writes "ready" on it once every listener is serving.
func (m Manifest) ReadyFD() uintptr { return uintptr(FirstFD + len(m.names)) }
