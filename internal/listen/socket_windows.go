//go:build windows

package listen

import (
	"fmt"
	"net"
	"os"
)

// Inherit is not supported on Windows.
func Inherit(fd uintptr, name string) (net.Listener, error) {
	return nil, fmt.Errorf("listeners: inherit %q: %w", name, ErrUnsupported)
}

// Export is not supported on Windows.
func Export(ln net.Listener, name string) (*os.File, error) {
	return nil, fmt.Errorf("listeners: export %q: %w", name, ErrUnsupported)
}
