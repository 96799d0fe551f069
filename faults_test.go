//go:build linux

package handoff_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A parent killed during the handshake leaves its child with the sockets:
// the child adopts them, serves, and claims the PID file, so the service
// stays up. (A child that refused them used to leak them and then fail to
// bind its own addresses, taking the service down.)
func TestParentKilledDuringHandoff(t *testing.T) {
	s := startServer(t)
	s.setMode("slow")
	s.signal(s.firstPID, syscall.SIGHUP)
	child := s.childStarted(s.firstPID)
	s.signal(s.firstPID, syscall.SIGKILL)
	if code := s.waitExit(s.firstPID, 10*time.Second); code != -1 {
		t.Logf("parent exit code %d", code)
	}
	waitFor(t, 20*time.Second, "the orphaned child to claim the PID file", func() bool { return s.pidFromFile() == child })
	if pid, err := fetch(s.api, "/pid"); err != nil || pid != strconv.Itoa(child) {
		t.Fatalf("GET /pid = %q, %v; want the child %d", pid, err, child)
	}
	if gen, _ := fetch(s.api, "/gen"); gen != "1" {
		t.Fatalf("the child's generation is %s, want 1", gen)
	}
	if s.logged(child, "the parent died during the handoff; adopting its listeners") == nil {
		t.Fatalf("the child did not say it adopted an orphaned handoff:\n%s", s.log())
	}
	s.signal(child, syscall.SIGTERM)
	if code := s.waitExit(child, 20*time.Second); code != 0 {
		t.Fatalf("child exited %d", code)
	}
}

// spawnCrash restarts a server whose child starts a subprocess (sleep)
// and dies, in mode (spawn-crash or spawn-crash-holding-pipe), and checks
// that the restart fails with the child's own status long before the
// ready timeout. It returns the server and the subprocess's pid.
func spawnCrash(t *testing.T, mode string) (*server, int) {
	t.Helper()
	s := startServer(t, "-ready-timeout", "30s")
	s.setMode(mode)
	start := time.Now()
	s.signal(s.firstPID, syscall.SIGHUP)
	var failed map[string]any
	waitFor(t, 20*time.Second, "the restart to fail", func() bool {
		failed = s.logged(s.firstPID, "restart failed; still serving")
		return failed != nil
	})
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the failure was seen after %v; the ready timeout is 30s, the child died at once", took)
	}
	if e, _ := failed["error"].(string); !strings.Contains(e, "exit status 1") {
		t.Fatalf("restart error %q; want the child's own status, exit status 1", e)
	}
	b, err := os.ReadFile(filepath.Join(s.dir, "grandchild.pid"))
	if err != nil {
		t.Fatal(err)
	}
	gc, _ := strconv.Atoi(string(b))
	t.Cleanup(func() {
		// Orphaned when the child died, it is this test's to reap.
		syscall.Kill(gc, syscall.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(gc, &ws, 0, nil)
	})
	return s, gc
}

// A child that starts a subprocess and then dies is seen dead at once,
// with its own exit status; the subprocess holds none of the sockets or
// the pipe.
func TestFailedChildsSubprocessHoldsNothing(t *testing.T) {
	s, gc := spawnCrash(t, "spawn-crash")
	// The server passed api, echo and the pipe as fds 3, 4 and 5; the
	// test runner may have left descriptors of its own above them. The
	// subprocess (sleep) opens files of its own while it starts (locale
	// data, at fd 3), and closes them: what it was handed stays for as
	// long as it lives, so only a descriptor that does not go away counts.
	var held []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		held = held[:0]
		fds, err := os.ReadDir("/proc/" + strconv.Itoa(gc) + "/fd")
		if err != nil {
			t.Fatal(err)
		}
		for _, fd := range fds {
			n, _ := strconv.Atoi(fd.Name())
			target, _ := os.Readlink("/proc/" + strconv.Itoa(gc) + "/fd/" + fd.Name())
			if n >= 3 && n <= 5 || strings.HasPrefix(target, "socket:") {
				held = append(held, fd.Name()+" "+target)
			}
		}
		if len(held) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the subprocess still holds %v after 10s", held)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if pid, err := fetch(s.api, "/pid"); err != nil || pid != strconv.Itoa(s.firstPID) {
		t.Fatalf("after the failed restart /pid = %q, %v", pid, err)
	}
}

// A child that dies while a subprocess it started holds its readiness
// pipe open is seen dead too, though the pipe never ends: the parent
// watches the child itself (through a pidfd on Linux) once it has been
// starting for a while.
func TestFailedChildSeenWhileItsSubprocessHoldsThePipe(t *testing.T) {
	s, gc := spawnCrash(t, "spawn-crash-holding-pipe")
	target, err := os.Readlink("/proc/" + strconv.Itoa(gc) + "/fd/3")
	if err != nil || !strings.HasPrefix(target, "pipe:") {
		t.Fatalf("the subprocess's fd 3 is %q, %v; want the readiness pipe, held open", target, err)
	}
	if pid, err := fetch(s.api, "/pid"); err != nil || pid != strconv.Itoa(s.firstPID) {
		t.Fatalf("after the failed restart /pid = %q, %v", pid, err)
	}
}

// A restart works after the directory the server started in was removed:
// what a restart needs is resolved at start.
func TestRestartAfterStartDirectoryRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gone")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := launch(t, launchOpts{dir: dir})
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		s.restart()
	}
}

// The program's own commands keep their exit statuses in a master: the
// master reaps its workers only (a reaper of any child used to make some
// exec.Command(...).Run() calls fail with "no child processes").
func TestMasterLeavesOtherChildrenAlone(t *testing.T) {
	s := startServer(t, "-master", "-exec-loop", "200")
	out := filepath.Join(s.dir, "exec-"+strconv.Itoa(s.firstPID))
	var got string
	waitFor(t, 60*time.Second, "200 runs of true in the master", func() bool {
		b, err := os.ReadFile(out)
		got = string(b)
		return err == nil
	})
	if !strings.HasPrefix(got, "0 ") {
		t.Fatalf("failed runs of true in the master: %s", got)
	}
}

// A master stops only once every worker has: a replaced worker still
// draining a request finishes it, and is not left behind (as PID 1, or
// under systemd, it would be killed with the master).
func TestMasterWaitsForDrainingWorkers(t *testing.T) {
	s := startServer(t, "-master")
	old := workerPID(t, s)
	slow := make(chan string, 1)
	go func() {
		body, err := fetch(s.api, "/slow?ms=3000")
		if err != nil {
			body = err.Error()
		}
		slow <- body
	}()
	waitFor(t, 10*time.Second, "the slow request to start", func() bool {
		st := s.stats()
		return st["InFlight"].(float64) >= 1
	})
	s.signal(s.firstPID, syscall.SIGHUP)
	waitFor(t, 20*time.Second, "a new worker", func() bool {
		pid, err := fetch(s.api, "/pid")
		return err == nil && pid != strconv.Itoa(old)
	})
	s.signal(s.firstPID, syscall.SIGTERM)
	if code := s.waitExit(s.firstPID, 30*time.Second); code != 0 {
		t.Fatalf("master exited %d", code)
	}
	if syscall.Kill(old, 0) == nil {
		t.Fatalf("the master exited while its old worker %d still ran", old)
	}
	if body := <-slow; body != "slow "+strconv.Itoa(old) {
		t.Fatalf("the request in flight in the old worker got %q", body)
	}
}

// In master mode the worker serves through its whole shutdown delay: the
// master's kill deadline counts the delay as well as hammer time.
func TestMasterKeepsTheShutdownDelay(t *testing.T) {
	s := startServer(t, "-master", "-shutdown-delay", "14s", "-hammer", "1s")
	worker := workerPID(t, s)
	s.signal(s.firstPID, syscall.SIGTERM)
	waitFor(t, 10*time.Second, "health to answer 503", func() bool {
		_, err := fetch(s.api, "/healthz")
		return err != nil && strings.Contains(err.Error(), "503")
	})
	// Past hammer time plus ten seconds, where the master used to kill it.
	time.Sleep(12 * time.Second)
	if body, err := fetch(s.api, "/pid"); err != nil || body != strconv.Itoa(worker) {
		t.Fatalf("12s into a 14s shutdown delay: %q, %v; want the worker %d serving", body, err, worker)
	}
	if code := s.waitExit(s.firstPID, 30*time.Second); code != 0 {
		t.Fatalf("master exited %d", code)
	}
}

// Once a stop has been asked for, SIGHUP starts no restart: the new
// process would never learn that the service is stopping.
func TestNoRestartDuringTheShutdownDelay(t *testing.T) {
	s := startServer(t, "-shutdown-delay", "30s")
	s.signal(s.firstPID, syscall.SIGTERM)
	waitFor(t, 10*time.Second, "health to answer 503", func() bool {
		_, err := fetch(s.api, "/healthz")
		return err != nil && strings.Contains(err.Error(), "503")
	})
	s.signal(s.firstPID, syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the restart to be refused", func() bool {
		return s.logged(s.firstPID, "restart requested while stopping; ignored") != nil
	})
	if s.logged(s.firstPID, "child started") != nil {
		t.Fatal("a child was started during the shutdown delay")
	}
	s.signal(s.firstPID, syscall.SIGTERM)
	if code := s.waitExit(s.firstPID, 20*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
}

// SIGTERM during a restart's handshake: the child is stopped, the PID file
// does not outlive the process, and the service manager, once told
// STOPPING=1, never hears READY=1 again.
func TestSIGTERMDuringHandshake(t *testing.T) {
	n := newNotifySocket(t)
	s := launch(t, launchOpts{env: []string{"NOTIFY_SOCKET=" + n.path}}, "-ready-timeout", "30s")
	s.setMode("hang")
	s.signal(s.firstPID, syscall.SIGHUP)
	child := s.childStarted(s.firstPID)
	s.signal(s.firstPID, syscall.SIGTERM)
	if code := s.waitExit(s.firstPID, 20*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	if syscall.Kill(child, 0) == nil {
		t.Fatalf("the child %d outlived the stop", child)
	}
	if pid := s.pidFromFile(); pid != 0 {
		t.Fatalf("the PID file names %d after the service stopped", pid)
	}
	stopping := false
	for _, m := range n.states() {
		if strings.HasPrefix(m.state, "STOPPING=1") {
			stopping = true
		} else if stopping && strings.Contains(m.state, "READY=1") {
			t.Fatalf("READY=1 after STOPPING=1: %+v", n.states())
		}
	}
	if !stopping {
		t.Fatalf("no STOPPING=1: %+v", n.states())
	}
}
