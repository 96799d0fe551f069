//go:build unix

package osx

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func startCmd(t *testing.T, args ...string) Process {
	t.Helper()
	path, err := exec.LookPath(args[0])
	if err != nil {
		t.Fatal(err)
	}
	p, err := start(path, args, nil, "", []*os.File{os.Stdin, os.Stdout, os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPollAndWait(t *testing.T) {
	for _, tt := range []struct {
		args []string
		kill bool
		want string
	}{
		{[]string{"true"}, false, ""},
		{[]string{"sh", "-c", "exit 3"}, false, "exit status 3"},
		{[]string{"sleep", "60"}, true, "signal: killed"},
	} {
		p := startCmd(t, tt.args...)
		if tt.kill {
			if exited, _ := p.Poll(); exited {
				t.Fatalf("%v: exited at once", tt.args)
			}
			p.Kill()
		}
		var status error
		deadline := time.Now().Add(10 * time.Second)
		for {
			exited, st := p.Poll()
			if exited {
				status = st
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%v: not exited after 10s", tt.args)
			}
			time.Sleep(5 * time.Millisecond)
		}
		got := ""
		if status != nil {
			got = status.Error()
		}
		if got != tt.want {
			t.Fatalf("%v: status %q, want %q", tt.args, got, tt.want)
		}
		// Once reaped: the same status again, and no signal to a pid that
		// may be another process's by now.
		if err := p.Wait(); (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Fatalf("%v: Wait after Poll = %v", tt.args, err)
		}
		if err := p.Kill(); err != nil {
			t.Fatalf("%v: Kill after reaping = %v, want nil (nothing sent)", tt.args, err)
		}
	}
	if !alive(os.Getpid()) {
		t.Fatal("this process is not alive")
	}
}
