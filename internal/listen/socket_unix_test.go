//go:build unix

package listen

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestExportKeepsTheSocketNonBlocking(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := Export(ln, "api")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd()) // Fd must not switch the shared socket to blocking mode
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.O_NONBLOCK == 0 {
		t.Fatal("the exported socket (shared with the listener) became blocking")
	}
	fdflags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil || fdflags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("the duplicate is not close-on-exec: %#x %v", fdflags, err)
	}
	// The duplicate is the same socket: a connection to it is accepted by ln.
	in, err := inheritDup(t, f, "api")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if AddrOf(in).String() != ln.Addr().String() {
		t.Fatalf("inherited %v, exported %v", AddrOf(in), ln.Addr())
	}
}

func TestInheritRejects(t *testing.T) {
	dir := t.TempDir()
	file, err := os.Create(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	closed, err := os.Create(filepath.Join(dir, "closed"))
	if err != nil {
		t.Fatal(err)
	}
	closedFD := closed.Fd()
	closed.Close()

	tests := []struct {
		name string
		fd   uintptr
		want string
	}{
		{"regular file", file.Fd(), "regular file"},
		{"pipe", r.Fd(), "pipe"},
		{"closed", closedFD, "bad file descriptor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Inherit(tt.fd, "api")
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `"api"`) {
				t.Fatalf("Inherit = %v, want an error naming api and %q", err, tt.want)
			}
			if tt.name != "closed" && !errors.Is(err, ErrNotListener) {
				t.Fatalf("%v is not ErrNotListener", err)
			}
		})
	}
}

// inheritDup gives Inherit a duplicate of f's descriptor, as a parent
// process would pass one: Inherit closes the descriptor it adopts, and f
// still closes its own (a descriptor closed twice may by then be another
// test's).
func inheritDup(t *testing.T, f *os.File, name string) (Socket, error) {
	t.Helper()
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	return Inherit(uintptr(fd), name)
}
