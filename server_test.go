//go:build linux

package handoff_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Twenty restarts under clients that open a connection per request,
// keep-alive clients and TCP echo clients, none of which retries: not one
// request fails, every slow request in flight at a restart is answered,
// one process is left, no zombie, and the descriptors a process holds do
// not grow with restarts.
func TestRestartsUnderLoad(t *testing.T) {
	const restarts = 20
	s := startServer(t)
	first := s.current()
	baseFDs := fdCount(t, first)

	l := startLoad(s, 4, 4, 2, 5*time.Minute)
	var slow sync.WaitGroup
	slowErrs := make(chan error, 2*restarts)
	for i := range restarts {
		for range 2 {
			slow.Add(1)
			go func() {
				defer slow.Done()
				body, err := fetch(s.api, "/slow?ms=400")
				if err == nil && !strings.HasPrefix(body, "slow ") {
					err = fmt.Errorf("slow request got %q", body)
				}
				if err != nil {
					slowErrs <- err
				}
			}()
		}
		// The slow requests are in flight once the server counts them.
		waitFor(t, 10*time.Second, "slow requests in flight", func() bool {
			st := s.stats()
			return st["InFlight"].(float64) >= 3 // two slow ones and /stats
		})
		pid := s.restart()
		if g, _ := fetch(s.api, "/gen"); g != strconv.Itoa(i+1) {
			t.Fatalf("after restart %d the generation is %q", i+1, g)
		}
		s.remember(pid)
	}
	slow.Wait()
	close(slowErrs)
	for err := range slowErrs {
		t.Errorf("slow request cut by a restart: %v", err)
	}
	l.finish(t)

	// Two more restarts with no client connected, so the new processes
	// hold only what they always hold. The first process may hold more:
	// descriptors the test runner left open (flock(1) leaves fd 3), which
	// a restarted process rightly does not inherit. Nothing may grow.
	quiet := fdCount(t, s.restart())
	last := s.restart()
	if got := fdCount(t, last); got > quiet || quiet > baseFDs {
		t.Errorf("descriptors grew: first process %d, after %d restarts %d, after one more %d",
			baseFDs, restarts+1, quiet, got)
	}
	live, zombies := descendants(t, s.bin)
	if len(live) != 1 || live[0] != last {
		t.Errorf("live server processes %v, want only %d", live, last)
	}
	if len(zombies) != 0 {
		t.Errorf("zombies: %v", zombies)
	}
	s.signal(last, syscall.SIGTERM)
	if code := s.waitExit(last, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM", code)
	}
	if _, err := os.Stat(s.pidFile); !os.IsNotExist(err) {
		t.Errorf("PID file left after the last process exited: %v", err)
	}
}

// A child that crashes at start, one that hangs, and one that cannot bind
// a listener are each given up on; the old process serves throughout and
// the next restart works.
func TestFailedRestartsKeepServing(t *testing.T) {
	for _, mode := range []string{"crash", "hang", "badlisten"} {
		t.Run(mode, func(t *testing.T) {
			s := startServer(t, "-ready-timeout", "1s")
			pid := s.current()
			l := startLoad(s, 2, 2, 1, time.Minute)
			s.setMode(mode)
			s.signal(pid, syscall.SIGHUP)
			waitFor(t, 20*time.Second, "the restart to fail", func() bool {
				return s.logCount(pid, "restart failed; still serving") == 1
			})
			if got, err := fetch(s.api, "/pid"); err != nil || got != strconv.Itoa(pid) {
				t.Fatalf("after the failed restart /pid = %q, %v; want %d", got, err, pid)
			}
			if got := s.pidFromFile(); got != pid {
				t.Fatalf("after the failed restart the PID file names %d, want %d", got, pid)
			}
			live, zombies := descendants(t, s.bin)
			if len(live) != 1 || len(zombies) != 0 {
				t.Fatalf("after the failed restart: live %v, zombies %v; want only %d", live, zombies, pid)
			}
			s.setMode("")
			next := s.restart()
			l.finish(t)
			if got, err := fetch(s.api, "/pid"); err != nil || got != strconv.Itoa(next) {
				t.Fatalf("after the good restart /pid = %q, %v; want %d", got, err, next)
			}
		})
	}
}

// Ten SIGHUPs at once start one child.
func TestSIGHUPStorm(t *testing.T) {
	s := startServer(t)
	pid := s.current()
	l := startLoad(s, 2, 2, 0, time.Minute)
	for range 10 {
		s.signal(pid, syscall.SIGHUP)
	}
	if code := s.waitExit(pid, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	next := s.current()
	l.finish(t)
	if n := s.logCount(pid, "child started"); n != 1 {
		t.Fatalf("%d children started, want 1", n)
	}
	live, zombies := descendants(t, s.bin)
	if len(live) != 1 || live[0] != next || len(zombies) != 0 {
		t.Fatalf("live %v, zombies %v; want only %d", live, zombies, next)
	}
}

// SIGTERM lets the request in flight finish, then the process exits 0.
func TestSIGTERMWithRequestInFlight(t *testing.T) {
	s := startServer(t)
	pid := s.current()
	got := make(chan string, 1)
	go func() {
		body, err := fetch(s.api, "/slow?ms=700")
		if err != nil {
			body = err.Error()
		}
		got <- body
	}()
	waitFor(t, 10*time.Second, "the request in flight", func() bool { return s.stats()["InFlight"].(float64) >= 2 })
	s.signal(pid, syscall.SIGTERM)
	if body := <-got; body != "slow "+strconv.Itoa(pid) {
		t.Fatalf("in-flight request got %q", body)
	}
	if code := s.waitExit(pid, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	if _, err := fetch(s.api, "/"); err == nil {
		t.Fatal("still answering after SIGTERM")
	}
}

// A restart runs the binary on disk now, not the one that started.
func TestRestartRunsTheNewBinary(t *testing.T) {
	s := startServer(t)
	if v, _ := fetch(s.api, "/version"); v != "1" {
		t.Fatalf("version %q, want 1", v)
	}
	next := filepath.Join(s.dir, "server.new")
	if err := buildTestBin(next, "2"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, s.bin); err != nil {
		t.Fatal(err)
	}
	s.restart()
	if v, _ := fetch(s.api, "/version"); v != "2" {
		t.Fatalf("after the restart version %q, want 2", v)
	}
}
