//go:build linux

package procfs

import (
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestOfThisProcess(t *testing.T) {
	p, ok := Of(os.Getpid())
	if !ok {
		t.Fatal("this process is not in /proc")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if p.PPID != os.Getppid() || p.Exe != exe || p.State == "" || p.Comm == "" {
		t.Fatalf("Of(self) = %+v; want ppid %d, exe %s", p, os.Getppid(), exe)
	}
}

// A child that exited and is not reaped is a zombie with its name.
func TestZombieChild(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	// Wait for its exit, leaving it unreaped.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	p, ok := Of(cmd.Process.Pid)
	if !ok || p.State != "Z" || p.Comm != "true" || p.PPID != os.Getpid() {
		t.Fatalf("Of(exited child) = %+v, %v; want a zombie named true, ppid %d", p, ok, os.Getpid())
	}
	if !slices.ContainsFunc(All(), func(q Proc) bool { return q.PID == p.PID }) {
		t.Fatal("All does not list the zombie")
	}
}

// CPU counts this process's time, in /proc's ticks.
func TestCPU(t *testing.T) {
	deadline := time.Now().Add(5 * time.Second)
	x := 0
	for time.Now().Before(deadline) {
		for i := range 1_000_000 {
			x += i
		}
		if p, ok := Of(os.Getpid()); ok && p.CPU >= 20*time.Millisecond {
			return
		}
	}
	t.Fatalf("no CPU time counted after 5s of work (%d)", x)
}

func TestOfMissing(t *testing.T) {
	if _, ok := Of(1 << 30); ok {
		t.Fatal("a pid that cannot exist was found")
	}
}

func TestFDs(t *testing.T) {
	before, err := FDs(os.Getpid())
	if err != nil || before == 0 {
		t.Fatalf("FDs = %d, %v", before, err)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := FDs(os.Getpid()); n != before+1 {
		t.Errorf("%d open with one more file, want %d", n, before+1)
	}
	f.Close()
	if _, err := FDs(1 << 30); err == nil {
		t.Error("no error for a missing process")
	}
}
