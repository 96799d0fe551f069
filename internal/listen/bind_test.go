//go:build unix

package listen

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestBindUnix(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "admin.sock")
	a := Addr{Network: "unix", Address: path}
	sock, err := Bind(context.Background(), a, FileOptions{Mode: 0o660})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o660 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket file %v, %v; want a socket with mode 0660", fi, err)
	}
	// In use: refused, and the file stays.
	if _, err := Bind(context.Background(), a, FileOptions{}); err == nil || !strings.Contains(err.Error(), "another process accepts") {
		t.Fatalf("Bind over a socket in use = %v", err)
	}
	// Closing never removes the file: a new process may serve on it.
	sock.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("closing removed the socket file: %v", err)
	}
	// Stale (nothing accepts): replaced.
	sock, err = Bind(context.Background(), a, FileOptions{})
	if err != nil {
		t.Fatalf("Bind over a stale socket file: %v", err)
	}
	sock.Close()
	if err := RemoveSocketFile(a); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("RemoveSocketFile left %v", err)
	}
	// Not a socket: refused, and the file stays.
	os.WriteFile(path, []byte("data"), 0o600)
	if _, err := Bind(context.Background(), a, FileOptions{}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Bind over a regular file = %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "data" {
		t.Fatal("the regular file was touched")
	}
	// A directory that does not exist.
	if _, err := Bind(context.Background(), Addr{Network: "unix", Address: filepath.Join(dir, "no", "s.sock")}, FileOptions{}); err == nil {
		t.Fatal("Bind in a missing directory succeeded")
	}
}

func TestInheritKinds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	for _, a := range []Addr{{"unix", path}, {"udp", "127.0.0.1:0"}, {"tcp", "127.0.0.1:0"}} {
		sock, err := Bind(context.Background(), a, FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		f, err := Export(sock, "x")
		if err != nil {
			t.Fatal(err)
		}
		in, err := inheritDup(t, f, "x")
		f.Close()
		if err != nil {
			t.Fatalf("%v: %v", a, err)
		}
		_, isPacket := in.(net.PacketConn)
		if isPacket != (a.Network == "udp") || !SameAddr(Addr{a.Network, AddrOf(sock).String()}, AddrOf(in)) {
			t.Fatalf("%v: inherited %T at %v", a, in, AddrOf(in))
		}
		in.Close()
		sock.Close()
	}
}

func TestBindAbstractUnix(t *testing.T) {
	a, err := ParseAddr("unix:@handoff-test-" + strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	sock, err := Bind(context.Background(), a, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	if !SameAddr(a, AddrOf(sock)) {
		t.Fatalf("bound %v for %v", AddrOf(sock), a)
	}
	c, err := net.Dial("unix", a.Address)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := RemoveSocketFile(a); err != nil {
		t.Fatalf("RemoveSocketFile of an abstract socket: %v", err)
	}
}
