//go:build windows

package listen

import (
	"fmt"
	"os"
)

// Inherit is not supported on Windows.
func Inherit(fd uintptr, name string) (Socket, error) {
	return nil, fmt.Errorf("listeners: inherit %q: %w", name, ErrUnsupported)
}

// Export is not supported on Windows.
func Export(sock Socket, name string) (*os.File, error) {
	return nil, fmt.Errorf("listeners: export %q: %w", name, ErrUnsupported)
}
