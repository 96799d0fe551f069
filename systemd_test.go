//go:build linux

package handoff_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// notification is one sd_notify datagram and the pid that sent it.
type notification struct {
	pid   int
	state string
}

// notifySocket is a fake service manager's NOTIFY_SOCKET.
type notifySocket struct {
	path string
	conn *net.UnixConn
	mu   sync.Mutex
	got  []notification
	done chan struct{}
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	// Ask for the sender's credentials, as systemd does, to check who said what.
	rc, _ := conn.SyscallConn()
	rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) })
	n := &notifySocket{path: path, conn: conn, done: make(chan struct{})}
	go n.read()
	t.Cleanup(func() { conn.Close(); <-n.done })
	return n
}

func (n *notifySocket) read() {
	defer close(n.done)
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	for {
		nb, noob, _, _, err := n.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		pid := 0
		if msgs, err := unix.ParseSocketControlMessage(oob[:noob]); err == nil && len(msgs) > 0 {
			if cred, err := unix.ParseUnixCredentials(&msgs[0]); err == nil {
				pid = int(cred.Pid)
			}
		}
		n.mu.Lock()
		n.got = append(n.got, notification{pid, string(buf[:nb])})
		n.mu.Unlock()
	}
}

// states returns the notifications other than watchdog pings.
func (n *notifySocket) states() []notification {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []notification
	for _, m := range n.got {
		if m.state != "WATCHDOG=1" {
			out = append(out, m)
		}
	}
	return out
}

func (n *notifySocket) pings(pid int) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.got {
		if m.state == "WATCHDOG=1" && m.pid == pid {
			c++
		}
	}
	return c
}

// The exact sd_notify sequence of a start, a restart, a failed restart
// and a stop, each message from the process that must send it, and
// watchdog pings from whichever process serves.
func TestNotifySequence(t *testing.T) {
	n := newNotifySocket(t)
	s := launch(t, launchOpts{env: []string{"NOTIFY_SOCKET=" + n.path, "WATCHDOG_USEC=100000"}}, "-ready-timeout", "2s")
	first := s.current()
	waitFor(t, 10*time.Second, "watchdog pings", func() bool { return n.pings(first) >= 2 })
	child := s.restart()
	waitFor(t, 10*time.Second, "watchdog pings from the new process", func() bool { return n.pings(child) >= 2 })
	s.setMode("crash")
	s.signal(child, syscall.SIGHUP)
	waitFor(t, 20*time.Second, "the failed restart", func() bool { return len(n.states()) >= 5 })
	s.signal(child, syscall.SIGTERM)
	if code := s.waitExit(child, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	want := []struct {
		pid    int
		prefix string
	}{
		{first, "READY=1\nSTATUS=serving api, echo"},
		{first, "RELOADING=1\nMONOTONIC_USEC="},
		{first, fmt.Sprintf("MAINPID=%d\nREADY=1\n", child)},
		{child, "RELOADING=1\nMONOTONIC_USEC="},
		{child, "READY=1\nSTATUS=restart failed, still serving: child exited before it was ready (exit status 3)"},
		{child, "STOPPING=1\nSTATUS=stopping (SIGTERM)"},
	}
	got := n.states()
	if len(got) != len(want) {
		t.Fatalf("%d notifications, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].pid != w.pid || !strings.HasPrefix(got[i].state, w.prefix) {
			t.Errorf("notification %d: pid %d %q; want pid %d %q…", i, got[i].pid, got[i].state, w.pid, w.prefix)
		}
	}
}

// systemd-socket-activate binds two named sockets and starts the server
// with them; names, not order, decide which listener gets which. Then
// restarts under load lose nothing.
func TestSocketActivation(t *testing.T) {
	if _, err := exec.LookPath("systemd-socket-activate"); err != nil {
		t.Fatal("systemd-socket-activate is missing: install Debian's systemd package (.ci/run does)")
	}
	apiAddr, echoAddr := freeAddr(t), freeAddr(t)
	o := launchOpts{}
	o.trigger = func(s *server) {
		// The first connection makes systemd-socket-activate start the
		// server; before it listens, a dial is refused.
		waitFor(t, 10*time.Second, "systemd-socket-activate to listen", func() bool {
			c, err := net.Dial("tcp", apiAddr)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	o.prefix = []string{"systemd-socket-activate", "-l", echoAddr, "-l", apiAddr, "--fdname=echo:api",
		"-E", "GORACE=atexit_sleep_ms=0", "--"}
	// The declared addresses are placeholders: the manager's sockets win.
	s := launch(t, o, "-api", "127.0.0.1:1", "-echo", "127.0.0.1:2")
	s.api, s.echo = apiAddr, echoAddr
	st := s.stats()
	for _, l := range st["Listeners"].([]any) {
		l := l.(map[string]any)
		want := map[string]string{"api": apiAddr, "echo": echoAddr}[l["Name"].(string)]
		if l["Addr"] != want || l["Inherited"] != true {
			t.Fatalf("listener %v: addr %v inherited %v; want the activated %s", l["Name"], l["Addr"], l["Inherited"], want)
		}
	}
	if err := echoOnce(echoAddr, make([]byte, 5)); err != nil {
		t.Fatalf("echo on the activated socket: %v", err)
	}
	l := startLoad(s, 3, 3, 1, time.Minute)
	for range 5 {
		s.restart()
	}
	l.finish(t)
}

// Master mode: restarts under load lose nothing, the same pid answers
// signals and names the PID file throughout, and one worker is left.
func TestMasterMode(t *testing.T) {
	s := startServer(t, "-master")
	master := s.firstPID
	l := startLoad(s, 3, 3, 1, 2*time.Minute)
	worker := workerPID(t, s)
	for i := range 10 {
		target := master
		if i%3 == 2 {
			target = worker // a worker passes the request to its master
		}
		s.signal(target, syscall.SIGHUP)
		waitFor(t, 20*time.Second, "the old worker to go", func() bool { return syscall.Kill(worker, 0) != nil })
		next := workerPID(t, s)
		if next == worker {
			t.Fatalf("restart %d: the same worker %d serves", i, worker)
		}
		worker = next
		if got := s.pidFromFile(); got != master {
			t.Fatalf("PID file names %d, want the master %d", got, master)
		}
	}
	l.finish(t)
	live, zombies := descendants(t, s.bin)
	if len(live) != 2 || len(zombies) != 0 {
		t.Fatalf("live %v (want the master and one worker), zombies %v", live, zombies)
	}
	s.signal(master, syscall.SIGTERM)
	if code := s.waitExit(master, 30*time.Second); code != 0 {
		t.Fatalf("master exited %d", code)
	}
	if live, _ := descendants(t, s.bin); len(live) != 0 {
		t.Fatalf("processes left after the master exited: %v", live)
	}
}

// workerPID asks the server which process answers, and checks that its
// parent is the master.
func workerPID(t *testing.T, s *server) int {
	t.Helper()
	pid, err := fetch(s.api, "/pid")
	if err != nil {
		t.Fatal(err)
	}
	ppid, err := fetch(s.api, "/ppid")
	if err != nil {
		t.Fatal(err)
	}
	if ppid != strconv.Itoa(s.firstPID) {
		t.Fatalf("worker's parent is %s, want the master %d", ppid, s.firstPID)
	}
	n, _ := strconv.Atoi(pid)
	return n
}

// As PID 1 of a new PID namespace the server is a master by itself, and a
// restart keeps the namespace (and so the container) alive.
func TestMasterAsPID1(t *testing.T) {
	if err := exec.Command("unshare", "-fp", "--mount-proc", "true").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI runs as root and must be able to make a PID namespace: %v", err)
		}
		t.Skipf("this machine does not allow a new PID namespace: %v", err)
	}
	o := launchOpts{prefix: []string{"unshare", "-fp", "--mount-proc"}}
	o.ready = func(s *server) bool { return s.pidFromFile() == 1 }
	s := launch(t, o)
	l := startLoad(s, 2, 2, 0, time.Minute)
	first, _ := fetch(s.api, "/pid")
	for range 3 {
		init := nsInit(t, s.firstPID)
		s.signal(init, syscall.SIGHUP)
		waitFor(t, 20*time.Second, "a new worker", func() bool {
			pid, err := fetch(s.api, "/pid")
			return err == nil && pid != first
		})
		first, _ = fetch(s.api, "/pid")
		if ppid, _ := fetch(s.api, "/ppid"); ppid != "1" {
			t.Fatalf("worker's parent is %s, want 1", ppid)
		}
	}
	l.finish(t)
	s.signal(nsInit(t, s.firstPID), syscall.SIGTERM)
	if code := s.waitExit(s.firstPID, 30*time.Second); code != 0 {
		t.Fatalf("unshare exited %d", code)
	}
}

// nsInit is the pid, seen from here, of the namespace's init: the child
// of unshare.
func nsInit(t *testing.T, unsharePID int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", unsharePID, unsharePID))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("children of unshare: %q", b)
	}
	return pid
}

// With a shutdown delay, SIGTERM first turns the health check to 503 while
// requests are still served; the same signal again drains at once.
func TestShutdownDelay(t *testing.T) {
	s := startServer(t, "-shutdown-delay", "30s")
	pid := s.current()
	if body, err := fetch(s.api, "/healthz"); err != nil || body != "ok\n" {
		t.Fatalf("healthz before: %q %v", body, err)
	}
	s.signal(pid, syscall.SIGTERM)
	waitFor(t, 10*time.Second, "health to answer 503", func() bool {
		_, err := fetch(s.api, "/healthz")
		return err != nil && strings.Contains(err.Error(), "503")
	})
	if body, err := fetch(s.api, "/"); err != nil || body != "ok" {
		t.Fatalf("during the delay a request got %q %v", body, err)
	}
	start := time.Now()
	s.signal(pid, syscall.SIGTERM)
	if code := s.waitExit(pid, 20*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the second SIGTERM took %v to end the delay", took)
	}
}

// In master mode only the master speaks to the service manager: its pid
// never changes, so no MAINPID=.
func TestNotifySequenceMaster(t *testing.T) {
	n := newNotifySocket(t)
	s := launch(t, launchOpts{env: []string{"NOTIFY_SOCKET=" + n.path, "WATCHDOG_USEC=100000"}}, "-master")
	master := s.firstPID
	worker := workerPID(t, s)
	waitFor(t, 10*time.Second, "watchdog pings from the master", func() bool { return n.pings(master) >= 2 })
	if p := n.pings(worker); p != 0 {
		t.Fatalf("the worker sent %d watchdog pings; only the master may", p)
	}
	s.signal(master, syscall.SIGHUP)
	waitFor(t, 20*time.Second, "the old worker to go", func() bool { return syscall.Kill(worker, 0) != nil })
	s.signal(master, syscall.SIGTERM)
	if code := s.waitExit(master, 30*time.Second); code != 0 {
		t.Fatalf("master exited %d", code)
	}
	want := []string{"READY=1\nSTATUS=master serving", "RELOADING=1\nMONOTONIC_USEC=", "READY=1\nSTATUS=master serving", "STOPPING=1"}
	got := n.states()
	if len(got) != len(want) {
		t.Fatalf("%d notifications, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].pid != master || !strings.HasPrefix(got[i].state, w) {
			t.Errorf("notification %d: pid %d %q; want the master %d %q…", i, got[i].pid, got[i].state, master, w)
		}
	}
}

// contrib/systemd/handoff-reload, the ExecReload= helper, exits 0 once the
// new process serves and 1 when the restart fails.
func TestReloadScript(t *testing.T) {
	script, err := filepath.Abs("contrib/systemd/handoff-reload")
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "-ready-timeout", "1s")
	run := func() (string, error) {
		out, err := exec.Command(script, s.pidFile, "5").CombinedOutput()
		return string(out), err
	}
	old := s.current()
	out, err := run()
	if err != nil {
		t.Fatalf("reload failed: %v\n%s", err, out)
	}
	if code := s.waitExit(old, 30*time.Second); code != 0 {
		t.Fatalf("old process exited %d", code)
	}
	pid := s.current()
	s.setMode("crash")
	out, err = run()
	if err == nil {
		t.Fatalf("a failed restart reloaded fine:\n%s", out)
	}
	if !strings.Contains(out, "still serves") {
		t.Fatalf("unexpected message: %s", out)
	}
	if got, _ := fetch(s.api, "/pid"); got != strconv.Itoa(pid) {
		t.Fatalf("after the failed reload /pid = %s, want %d", got, pid)
	}
}

// Ctrl-C in a terminal signals the whole foreground process group, master
// and worker at once: everything stops cleanly, with status 0.
func TestMasterCtrlC(t *testing.T) {
	for i := range 5 {
		s := launch(t, launchOpts{ownGroup: true}, "-master")
		worker := workerPID(t, s)
		if err := syscall.Kill(-s.firstPID, syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if code := s.waitExit(s.firstPID, 30*time.Second); code != 0 {
			t.Fatalf("round %d: master exited %d after Ctrl-C", i, code)
		}
		if syscall.Kill(worker, 0) == nil {
			t.Fatalf("round %d: worker %d still running", i, worker)
		}
	}
}

// A worker that stops as asked (status 0) ends the master cleanly; one that
// dies makes the master exit with an error, for the supervisor to see.
func TestMasterFollowsItsWorker(t *testing.T) {
	for _, tt := range []struct {
		sig      syscall.Signal
		wantCode int
	}{{syscall.SIGTERM, 0}, {syscall.SIGKILL, 1}} {
		t.Run(tt.sig.String(), func(t *testing.T) {
			s := startServer(t, "-master")
			s.signal(workerPID(t, s), tt.sig)
			if code := s.waitExit(s.firstPID, 30*time.Second); code != tt.wantCode {
				t.Fatalf("master exited %d, want %d", code, tt.wantCode)
			}
		})
	}
}
