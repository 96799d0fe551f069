//go:build unix

package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/protocol"
	"github.com/handoff-go/handoff/listeners"
)

// TestMain doubles as the child of the adoption tests: with
// HANDOFF_TEST_CHILD set, the test binary is a small server instead.
func TestMain(m *testing.M) {
	if decl := os.Getenv("HANDOFF_TEST_CHILD"); decl != "" {
		os.Exit(runChild(decl))
	}
	os.Exit(m.Run())
}

// childReport is what the child prints once serving.
type childReport struct {
	Stats     Stats
	Listening []int             // ports of the listening sockets it holds
	Env       map[string]string // the handoff variables it still sees
}

func runChild(decl string) int {
	s := New(WithLogger(zerolog.New(os.Stderr)), WithHammerTime(2*time.Second),
		WithHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})),
		WithPIDFile(os.Getenv("HANDOFF_TEST_PIDFILE")))
	for _, item := range strings.Split(decl, ",") {
		name, addr, _ := strings.Cut(item, "=")
		if strings.HasPrefix(addr, "udp:") {
			s.Listen(name, addr, listeners.Packet(func(ctx context.Context, pc net.PacketConn) { <-ctx.Done() }))
			continue
		}
		s.Listen(name, addr)
	}
	go func() {
		select {
		case <-s.Serving():
		case <-s.drained:
			return
		}
		rep := childReport{Stats: s.Stats(), Listening: listeningPorts(), Env: map[string]string{}}
		for _, k := range []string{protocol.EnvOrder, protocol.EnvParentPID, protocol.EnvGeneration,
			protocol.EnvListenPID, protocol.EnvListenFDs, protocol.EnvListenFDNames} {
			if v, ok := os.LookupEnv(k); ok {
				rep.Env[k] = v
			}
		}
		json.NewEncoder(os.Stdout).Encode(rep)
		s.Shutdown(context.Background())
	}()
	if err := s.Serve(); err != nil {
		fmt.Fprintln(os.Stderr, "serve error:", err)
		return 1
	}
	return 0
}

// listeningPorts lists the ports of this process's listening sockets.
func listeningPorts() []int {
	entries, _ := os.ReadDir("/proc/self/fd")
	var ports []int
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || acc != 1 {
			continue
		}
		switch sa, _ := unix.Getsockname(fd); sa := sa.(type) {
		case *unix.SockaddrInet4:
			ports = append(ports, sa.Port)
		case *unix.SockaddrInet6:
			ports = append(ports, sa.Port)
		}
	}
	return ports
}

func listenTCP(t *testing.T) (*os.File, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, ln.Addr().(*net.TCPAddr).Port
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func regularFile(t *testing.T) *os.File {
	f, err := os.Create(filepath.Join(t.TempDir(), "regular"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func pipeEnd(t *testing.T) *os.File {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r
}

func connectedSocket(t *testing.T) *os.File {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f, err := c.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func udpSocket(t *testing.T) *os.File {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f, err := c.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

type childRun struct {
	code   int
	report childReport
	stderr string
	ready  string
}

// runAdoption starts the test binary as a child with files at fd 3 on,
// then a readiness pipe, and the given environment on top of this one's.
func runAdoption(t *testing.T, decl string, env map[string]string, files ...*os.File) childRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	if env["LISTEN_PID"] == "self" {
		// LISTEN_PID must be the child's own pid: a shell exports its
		// own and execs the child, which keeps it.
		delete(env, "LISTEN_PID")
		cmd = exec.CommandContext(ctx, "/bin/sh", "-c", `export LISTEN_PID=$$; exec "$0" -test.run='^$'`, os.Args[0])
	}
	cmd.Env = append(os.Environ(), "HANDOFF_TEST_CHILD="+decl, "GORACE=atexit_sleep_ms=0")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.ExtraFiles = append(append([]*os.File(nil), files...), w)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	ready, _ := io.ReadAll(r)
	err = cmd.Wait()
	run := childRun{stderr: stderr.String(), ready: string(ready)}
	if ee, ok := err.(*exec.ExitError); ok {
		run.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("child: %v", err)
	}
	if run.code == 0 {
		if err := json.Unmarshal([]byte(stdout.String()), &run.report); err != nil {
			t.Fatalf("child report %q: %v\nstderr:\n%s", stdout.String(), err, run.stderr)
		}
	}
	return run
}

func parentEnv(manifest string) map[string]string {
	return map[string]string{
		protocol.EnvOrder:      manifest,
		protocol.EnvParentPID:  strconv.Itoa(os.Getpid()),
		protocol.EnvGeneration: "1",
	}
}

func listenerStats(t *testing.T, st Stats, name string) ListenerStats {
	t.Helper()
	for _, l := range st.Listeners {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("no listener %q in %+v", name, st.Listeners)
	return ListenerStats{}
}

func TestChildAdoptsListeners(t *testing.T) {
	api, apiPort := listenTCP(t)
	admin, adminPort := listenTCP(t)
	run := runAdoption(t, "api=127.0.0.1:"+strconv.Itoa(apiPort)+",admin=127.0.0.1:0",
		parentEnv("api,admin"), api, admin)
	if run.code != 0 {
		t.Fatalf("child exited %d:\n%s", run.code, run.stderr)
	}
	if run.ready != protocol.ReadyMessage {
		t.Fatalf("readiness pipe said %q, want %q", run.ready, protocol.ReadyMessage)
	}
	st := run.report.Stats
	if st.Generation != 1 {
		t.Errorf("generation %d, want 1", st.Generation)
	}
	for name, port := range map[string]int{"api": apiPort, "admin": adminPort} {
		l := listenerStats(t, st, name)
		if !l.Inherited || l.Addr != "127.0.0.1:"+strconv.Itoa(port) {
			t.Errorf("%s: inherited %v at %s, want inherited at port %d", name, l.Inherited, l.Addr, port)
		}
	}
	if len(run.report.Env) != 0 {
		t.Errorf("variables still set in the child: %v", run.report.Env)
	}
	if got := run.report.Listening; len(got) != 2 || !slices.Contains(got, apiPort) || !slices.Contains(got, adminPort) {
		t.Errorf("child holds listening ports %v, want exactly %d and %d (no leaked duplicate)", got, apiPort, adminPort)
	}
}

func TestChildReconcilesDeclarations(t *testing.T) {
	t.Run("undeclared listener is closed", func(t *testing.T) {
		api, apiPort := listenTCP(t)
		old, oldPort := listenTCP(t)
		run := runAdoption(t, "api=127.0.0.1:0", parentEnv("api,old"), api, old)
		if run.code != 0 {
			t.Fatalf("child exited %d:\n%s", run.code, run.stderr)
		}
		if slices.Contains(run.report.Listening, oldPort) || !slices.Contains(run.report.Listening, apiPort) {
			t.Fatalf("child listens on %v; want %d and not %d", run.report.Listening, apiPort, oldPort)
		}
		if !strings.Contains(run.stderr, "no longer declares") {
			t.Errorf("no log line about the closed listener:\n%s", run.stderr)
		}
	})
	t.Run("changed address is bound afresh", func(t *testing.T) {
		api, apiPort := listenTCP(t)
		newPort := freePort(t)
		run := runAdoption(t, "api=127.0.0.1:"+strconv.Itoa(newPort), parentEnv("api"), api)
		if run.code != 0 {
			t.Fatalf("child exited %d:\n%s", run.code, run.stderr)
		}
		l := listenerStats(t, run.report.Stats, "api")
		if l.Inherited || l.Addr != "127.0.0.1:"+strconv.Itoa(newPort) {
			t.Fatalf("api: inherited %v at %s; want fresh at %d", l.Inherited, l.Addr, newPort)
		}
		if slices.Contains(run.report.Listening, apiPort) {
			t.Fatalf("child still holds the old socket at %d", apiPort)
		}
	})
	t.Run("renamed listener keeps its socket", func(t *testing.T) {
		old, port := listenTCP(t)
		run := runAdoption(t, "public=127.0.0.1:"+strconv.Itoa(port), parentEnv("api"), old)
		if run.code != 0 {
			t.Fatalf("child exited %d:\n%s", run.code, run.stderr)
		}
		if l := listenerStats(t, run.report.Stats, "public"); !l.Inherited {
			t.Fatalf("public was bound afresh, want the socket of api")
		}
	})
}

func TestChildRejectsBadInput(t *testing.T) {
	tests := []struct {
		name     string
		manifest string
		files    func(t *testing.T) []*os.File
		want     string
	}{
		{"empty item", "api,,admin", twoListeners, "empty name"},
		{"trailing comma", "api,", twoListeners, "empty name"},
		{"bad characters", "api;rm", twoListeners, "invalid name"},
		{"duplicate", "api,api", twoListeners, "duplicate name"},
		{"more names than fds", "api,admin,extra", twoListeners, `inherit "extra" from fd 5`},
		{"regular file", "api", one(regularFile), "it is a regular file"},
		{"pipe", "api", one(pipeEnd), "it is a pipe"},
		{"connected socket", "api", one(connectedSocket), "not listening"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := runAdoption(t, "api=127.0.0.1:0", parentEnv(tt.manifest), tt.files(t)...)
			if run.code == 0 {
				t.Fatalf("child accepted %s; stderr:\n%s", tt.name, run.stderr)
			}
			if !strings.Contains(run.stderr, tt.want) {
				t.Fatalf("stderr lacks %q:\n%s", tt.want, run.stderr)
			}
			if run.ready != "" {
				t.Fatalf("a failing child reported %q", run.ready)
			}
		})
	}
}

func twoListeners(t *testing.T) []*os.File {
	a, _ := listenTCP(t)
	b, _ := listenTCP(t)
	return []*os.File{a, b}
}

func one(fn func(*testing.T) *os.File) func(*testing.T) []*os.File {
	return func(t *testing.T) []*os.File { return []*os.File{fn(t)} }
}

// A socket of another kind than the declared listener's (a UDP socket
// passed for a TCP listener, say: the new binary changed the listener) is
// never served: the child binds the declared address afresh.
func TestChildRebindsASocketOfAnotherKind(t *testing.T) {
	run := runAdoption(t, "api=127.0.0.1:0", parentEnv("api"), udpSocket(t))
	if run.code != 0 {
		t.Fatalf("exit %d:\n%s", run.code, run.stderr)
	}
	if l := listenerStats(t, run.report.Stats, "api"); l.Inherited || l.Kind != "http" {
		t.Fatalf("api %+v: the UDP socket was served as an HTTP listener", l)
	}
	if !strings.Contains(run.stderr, "binding afresh") {
		t.Fatalf("not logged:\n%s", run.stderr)
	}
}

func TestChildIgnoresForeignVariables(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"other parent": {protocol.EnvOrder: "api", protocol.EnvParentPID: "1", protocol.EnvGeneration: "4"},
		"no parent":    {protocol.EnvOrder: "api"},
		"garbage pid":  {protocol.EnvOrder: "api", protocol.EnvParentPID: "twelve"},
	} {
		t.Run(name, func(t *testing.T) {
			sock, port := listenTCP(t)
			run := runAdoption(t, "api=127.0.0.1:0", env, sock)
			if run.code != 0 {
				t.Fatalf("child exited %d:\n%s", run.code, run.stderr)
			}
			if !strings.Contains(run.stderr, "ignoring inherited listeners") {
				t.Errorf("no warning logged:\n%s", run.stderr)
			}
			// The descriptor is not the child's: it is neither served nor
			// closed, and api is bound afresh.
			l := listenerStats(t, run.report.Stats, "api")
			if l.Inherited || l.Addr == "127.0.0.1:"+strconv.Itoa(port) {
				t.Fatalf("adopted a socket it was not given: %+v", l)
			}
			if run.report.Stats.Generation != 0 || run.ready != "" {
				t.Fatalf("generation %d, ready %q; want 0 and nothing", run.report.Stats.Generation, run.ready)
			}
			if len(run.report.Env) != 0 {
				t.Errorf("variables still set: %v", run.report.Env)
			}
		})
	}
}

// deadPID is the pid of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// A parent that died during the handshake (killed, say) leaves the child
// its sockets: it adopts them, claims the PID file itself (nobody else
// will) and writes nothing on the pipe nobody reads.
func TestChildOfADeadParentAdopts(t *testing.T) {
	sock, port := listenTCP(t)
	env := parentEnv("api")
	env[protocol.EnvParentPID] = strconv.Itoa(deadPID(t))
	pidFile := filepath.Join(t.TempDir(), "pid")
	env["HANDOFF_TEST_PIDFILE"] = pidFile
	run := runAdoption(t, "api=127.0.0.1:0", env, sock)
	if run.code != 0 {
		t.Fatalf("exit %d:\n%s", run.code, run.stderr)
	}
	if l := listenerStats(t, run.report.Stats, "api"); !l.Inherited || l.Addr != "127.0.0.1:"+strconv.Itoa(port) {
		t.Fatalf("api %+v, want the inherited socket at %d", l, port)
	}
	if run.ready != "" || !strings.Contains(run.stderr, "the parent died during the handoff") {
		t.Fatalf("ready %q; stderr:\n%s", run.ready, run.stderr)
	}
	if !strings.Contains(run.stderr, `"names":`+strconv.Itoa(run.report.Stats.PID)) {
		t.Fatalf("the orphaned child did not claim the PID file:\n%s", run.stderr)
	}
	// Stale variables naming a dead parent and no socket are ignored.
	env[protocol.EnvParentPID] = strconv.Itoa(deadPID(t))
	run = runAdoption(t, "api=127.0.0.1:0", env, regularFile(t))
	if run.code != 0 || !strings.Contains(run.stderr, "name no listening socket") {
		t.Fatalf("exit %d:\n%s", run.code, run.stderr)
	}
}

// A handoff child leaves the PID file to its parent, which names the child
// in it only once the child is ready: a reader that sees the file change
// knows the restart worked.
func TestHandoffChildLeavesThePIDFileToItsParent(t *testing.T) {
	sock, _ := listenTCP(t)
	env := parentEnv("api")
	pidFile := filepath.Join(t.TempDir(), "pid")
	env["HANDOFF_TEST_PIDFILE"] = pidFile
	run := runAdoption(t, "api=127.0.0.1:0", env, sock)
	if run.code != 0 || run.ready != protocol.ReadyMessage {
		t.Fatalf("exit %d, ready %q:\n%s", run.code, run.ready, run.stderr)
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		b, _ := os.ReadFile(pidFile)
		t.Fatalf("the child wrote the PID file (%q, %v)", b, err)
	}
}

func TestChildRejectsBadGeneration(t *testing.T) {
	sock, _ := listenTCP(t)
	env := parentEnv("api")
	env[protocol.EnvGeneration] = "x"
	run := runAdoption(t, "api=127.0.0.1:0", env, sock)
	if run.code == 0 || !strings.Contains(run.stderr, protocol.EnvGeneration) {
		t.Fatalf("exit %d, stderr:\n%s", run.code, run.stderr)
	}
}

func activationEnv(fds, names string) map[string]string {
	env := map[string]string{"LISTEN_PID": "self", "LISTEN_FDS": fds}
	if names != "" {
		env["LISTEN_FDNAMES"] = names
	}
	return env
}

func TestSocketActivationAdoption(t *testing.T) {
	t.Run("by order", func(t *testing.T) {
		a, aPort := listenTCP(t)
		b, bPort := listenTCP(t)
		// The declared addresses do not matter: the manager's sockets win.
		run := runAdoption(t, "api=127.0.0.1:1,admin=127.0.0.1:2", activationEnv("2", ""), a, b)
		if run.code != 0 {
			t.Fatalf("exit %d:\n%s", run.code, run.stderr)
		}
		for name, port := range map[string]int{"api": aPort, "admin": bPort} {
			if l := listenerStats(t, run.report.Stats, name); !l.Inherited || l.Addr != "127.0.0.1:"+strconv.Itoa(port) {
				t.Errorf("%s: %+v, want the activated socket at %d", name, l, port)
			}
		}
		if run.ready != "" {
			t.Errorf("wrote %q on a readiness pipe that is not there", run.ready)
		}
	})
	t.Run("by name", func(t *testing.T) {
		a, aPort := listenTCP(t)
		b, bPort := listenTCP(t)
		run := runAdoption(t, "api=127.0.0.1:0,admin=127.0.0.1:0", activationEnv("2", "admin:api"), a, b)
		if run.code != 0 {
			t.Fatalf("exit %d:\n%s", run.code, run.stderr)
		}
		if l := listenerStats(t, run.report.Stats, "admin"); l.Addr != "127.0.0.1:"+strconv.Itoa(aPort) {
			t.Errorf("admin at %s, want fd 3's port %d", l.Addr, aPort)
		}
		if l := listenerStats(t, run.report.Stats, "api"); l.Addr != "127.0.0.1:"+strconv.Itoa(bPort) {
			t.Errorf("api at %s, want fd 4's port %d", l.Addr, bPort)
		}
	})
	t.Run("a named socket goes to its listener or to none", func(t *testing.T) {
		metrics, mPort := listenTCP(t)
		api, aPort := listenTCP(t)
		run := runAdoption(t, "api=127.0.0.1:0,admin=127.0.0.1:0", activationEnv("2", "metrics:api"), metrics, api)
		if run.code != 0 {
			t.Fatalf("exit %d:\n%s", run.code, run.stderr)
		}
		if l := listenerStats(t, run.report.Stats, "api"); l.Addr != "127.0.0.1:"+strconv.Itoa(aPort) {
			t.Errorf("api at %s, want its socket's port %d", l.Addr, aPort)
		}
		if l := listenerStats(t, run.report.Stats, "admin"); l.Inherited || l.Addr == "127.0.0.1:"+strconv.Itoa(mPort) {
			t.Errorf("admin was given the socket named metrics: %+v", l)
		}
		if slices.Contains(run.report.Listening, mPort) {
			t.Errorf("the metrics socket at %d is still held", mPort)
		}
	})
	t.Run("unix and UDP sockets", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "a.sock")
		ul, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		ul.(*net.UnixListener).SetUnlinkOnClose(false)
		uf, _ := ul.(*net.UnixListener).File()
		ul.Close()
		up, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		uport := up.LocalAddr().(*net.UDPAddr).Port
		pf, _ := up.(*net.UDPConn).File()
		up.Close()
		run := runAdoption(t, "local=unix:/nowhere/x.sock,dns=udp:127.0.0.1:1", activationEnv("2", "dns:local"), pf, uf)
		if run.code != 0 {
			t.Fatalf("exit %d:\n%s", run.code, run.stderr)
		}
		if l := listenerStats(t, run.report.Stats, "local"); !l.Inherited || l.Addr != path || l.Kind != "http" {
			t.Errorf("local %+v, want the activated unix socket at %s", l, path)
		}
		if l := listenerStats(t, run.report.Stats, "dns"); !l.Inherited || l.Addr != "127.0.0.1:"+strconv.Itoa(uport) || l.Kind != "packet" {
			t.Errorf("dns %+v, want the activated UDP socket at %d", l, uport)
		}
	})
	t.Run("extra descriptor is closed", func(t *testing.T) {
		a, _ := listenTCP(t)
		b, bPort := listenTCP(t)
		run := runAdoption(t, "api=127.0.0.1:0", activationEnv("2", ""), a, b)
		if run.code != 0 {
			t.Fatalf("exit %d:\n%s", run.code, run.stderr)
		}
		if slices.Contains(run.report.Listening, bPort) || !strings.Contains(run.stderr, "matches no listener") {
			t.Fatalf("the extra socket at %d is still held (%v) or not logged", bPort, run.report.Listening)
		}
	})
	t.Run("another process", func(t *testing.T) {
		a, aPort := listenTCP(t)
		run := runAdoption(t, "api=127.0.0.1:0", map[string]string{"LISTEN_PID": "1", "LISTEN_FDS": "1"}, a)
		if run.code != 0 {
			t.Fatalf("exit %d:\n%s", run.code, run.stderr)
		}
		if l := listenerStats(t, run.report.Stats, "api"); l.Inherited || l.Addr == "127.0.0.1:"+strconv.Itoa(aPort) {
			t.Fatalf("adopted sockets meant for pid 1: %+v", l)
		}
		if !strings.Contains(run.stderr, "another process") {
			t.Errorf("not logged:\n%s", run.stderr)
		}
		if _, ok := run.report.Env["LISTEN_PID"]; ok {
			t.Error("LISTEN_PID still set")
		}
	})
	for _, tt := range []struct {
		name       string
		fds, names string
		files      func(*testing.T) []*os.File
		want       string
	}{
		{"fds not a number", "two", "", twoListeners, "is not a count"},
		{"more names than fds", "1", "api:admin", twoListeners, "names 2 descriptors"},
		{"not a socket", "1", "", one(regularFile), "it is a regular file"},
		{"connected socket", "1", "", one(connectedSocket), "not listening"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			run := runAdoption(t, "api=127.0.0.1:0", activationEnv(tt.fds, tt.names), tt.files(t)...)
			if run.code == 0 || !strings.Contains(run.stderr, tt.want) {
				t.Fatalf("exit %d, want an error with %q:\n%s", run.code, tt.want, run.stderr)
			}
		})
	}
}
