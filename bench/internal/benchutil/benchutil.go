// Package benchutil holds what the bench programs share: building the
// server they measure and picking a free loopback address.
package benchutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildServer builds internal/testbin into a new temporary directory and
// returns the binary, the directory (for other files) and a func that
// removes it.
func BuildServer() (bin, dir string, cleanup func(), err error) {
	dir, cleanup, err = TempDir()
	if err != nil {
		return "", "", nil, err
	}
	bin = filepath.Join(dir, "server")
	if out, err := exec.Command("go", "build", "-o", bin, "./internal/testbin").CombinedOutput(); err != nil {
		cleanup()
		return "", "", nil, fmt.Errorf("build: %v\n%s", err, out)
	}
	return bin, dir, cleanup, nil
}

// TempDir makes a new temporary directory and returns it with the func
// that removes it.
func TempDir() (dir string, cleanup func(), err error) {
	dir, err = os.MkdirTemp("", "handoff-bench-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// FreeAddr returns a 127.0.0.1 address with a port nothing listens on now.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
