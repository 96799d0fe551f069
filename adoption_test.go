//go:build linux

package handoff_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A deploy that switches a symlink to a new release and sends SIGHUP runs
// the new release: the restart runs the path the program was started by,
// not the file that path led to then.
func TestSymlinkDeployRunsTheNewRelease(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"1", "2"} {
		rel := filepath.Join(dir, "releases", "v"+v)
		if err := os.MkdirAll(rel, 0o755); err != nil {
			t.Fatal(err)
		}
		if v == "1" {
			data, err := os.ReadFile(testBin)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(rel, "server"), data, 0o755); err != nil {
				t.Fatal(err)
			}
		} else if err := buildTestBin(filepath.Join(rel, "server"), v); err != nil {
			t.Fatal(err)
		}
	}
	current := filepath.Join(dir, "current")
	if err := os.Symlink("releases/v1", current); err != nil {
		t.Fatal(err)
	}
	s := launch(t, launchOpts{dir: dir, bin: "current/server"})
	if v, err := fetch(s.api, "/version"); err != nil || v != "1" {
		t.Fatalf("version %q, %v; want 1", v, err)
	}
	// Switch the link the way deploy tools do: a new link renamed over it.
	if err := os.Symlink("releases/v2", current+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(current+".new", current); err != nil {
		t.Fatal(err)
	}
	s.restart()
	if v, err := fetch(s.api, "/version"); err != nil || v != "2" {
		t.Fatalf("after the switch and a restart, version %q, %v; want 2", v, err)
	}
}

// The child of a restart gets the environment as it is at the restart
// (os.Setenv in a Before(SIGHUP) hook reaches it), through WithChildEnv's
// function when there is one, and none of handoff's variables.
func TestChildEnvironment(t *testing.T) {
	s := startServer(t, "-setenv-on-hup", "HANDOFF_TEST_HOOK=set-in-hook", "-child-env", "HANDOFF_TEST_CHILD_ENV=added")
	if v, _ := fetch(s.api, "/env?k=HANDOFF_TEST_HOOK"); v != "" {
		t.Fatalf("HANDOFF_TEST_HOOK=%q before any restart", v)
	}
	s.restart()
	for k, want := range map[string]string{
		"HANDOFF_TEST_HOOK":      "set-in-hook",
		"HANDOFF_TEST_CHILD_ENV": "added",
		"ENDLESS_SOCKET_ORDER":   "",
		"ENDLESS_PARENT_PID":     "",
	} {
		if v, err := fetch(s.api, "/env?k="+k); err != nil || v != want {
			t.Errorf("%s=%q, %v in the new process; want %q", k, v, err, want)
		}
	}
}

// goRun starts `go run ARGS...` in dir and returns it with its log; the
// test kills and reaps it and everything it started.
func goRun(t *testing.T, dir string, args ...string) (*exec.Cmd, *os.File) {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", append([]string{"run"}, args...)...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // go run, the master and its workers
		cmd.Wait()
		reapAll()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("log of go run:\n%s", b)
		}
		logf.Close()
	})
	return cmd, logf
}

// reapAll reaps whatever children of the test have exited (orphans come
// to it: it is their subreaper).
func reapAll() {
	for {
		var ws syscall.WaitStatus
		if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
			return
		}
	}
}

func countLines(path, text string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), text) {
			n++
		}
	}
	return n
}

// The README's commands run a program with `go run`, which deletes the
// binary it built once its child exits. Such a program serves in master
// mode by itself, so a person can restart it again and again by signalling
// the pid in its PID file.
func TestGoRunRestartsFiveTimes(t *testing.T) {
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, dir string
		args      []string
		listens   []string
		check     func(addr string) (string, error)
	}{
		{"examples/ws", root, []string{"./examples/ws"}, []string{"-addr"}, func(a string) (string, error) { return fetch(a, "/") }},
		{"examples/gin", filepath.Join(root, "examples", "gin"), []string{"."}, []string{"-api", "-admin"},
			func(a string) (string, error) { return fetch(a, "/") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "app.pid")
			args := append(append([]string(nil), tt.args...), "-pidfile", pidFile)
			addrs := map[string]string{}
			for _, flag := range tt.listens {
				addrs[flag] = freeAddr(t)
				args = append(args, flag, addrs[flag])
			}
			first := tt.listens[0]
			cmd, logf := goRun(t, tt.dir, args...)
			pid := func() int {
				b, _ := os.ReadFile(pidFile)
				n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
				return n
			}
			waitFor(t, 120*time.Second, "the program to serve", func() bool {
				_, err := tt.check(addrs[first])
				return err == nil && pid() != 0
			})
			master := pid()
			if countLines(logf.Name(), "master mode") == 0 {
				t.Fatal("go run did not choose master mode")
			}
			for i := 1; i <= 5; i++ {
				if err := syscall.Kill(master, syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
				waitFor(t, 30*time.Second, "worker "+strconv.Itoa(i+1), func() bool {
					return countLines(logf.Name(), "worker ready") >= i+1
				})
				if _, err := tt.check(addrs[first]); err != nil {
					t.Fatalf("after restart %d: %v", i, err)
				}
				if pid() != master {
					t.Fatalf("after restart %d the PID file names %d, not the master %d", i, pid(), master)
				}
			}
			syscall.Kill(master, syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("go run: %v", err)
				}
			case <-time.After(60 * time.Second):
				t.Fatal("go run did not exit after SIGTERM to the master")
			}
		})
	}
}
