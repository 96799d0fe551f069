//go:build unix

package server

import (
	"errors"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// startMaster runs a master over fake workers. f.obey makes the workers
// exit when told to stop, as real ones do.
func startMaster(t *testing.T, f *fakeOS, opts ...Option) (*Server, chan error) {
	t.Helper()
	opts = append([]Option{WithSignals(silentSource{}), WithLogger(testLogger(t)), WithMaster(),
		WithHammerTime(200 * time.Millisecond)}, opts...)
	s := newServer(f.osx(), opts...)
	s.masterTimings = masterTimings{killSlack: 200 * time.Millisecond, reapEvery: 10 * time.Millisecond}
	s.Listen("api", "127.0.0.1:0")
	served := serveInBackground(t, s)
	t.Cleanup(func() {
		s.beginDrain("test over")
		f.mu.Lock()
		children := append([]*fakeChild(nil), f.children...)
		f.mu.Unlock()
		for _, c := range children {
			c.end(nil)
		}
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Error("master's Serve did not return")
		}
	})
	return s, served
}

func (f *fakeOS) child(i int) *fakeChild {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.children[i]
}

func TestMasterReplacesItsWorker(t *testing.T) {
	f := newFakeOS(t)
	f.obey = true
	s, served := startMaster(t, f)
	first := f.child(0)
	if env := f.envs[0]; !slices.Contains(env, "HANDOFF_MASTER_PID="+strconv.Itoa(os.Getpid())) {
		t.Fatalf("worker env lacks the master's pid: %v", env)
	}
	if a := s.Addr("api"); a == nil {
		t.Fatal("Addr(api) is nil in a master")
	}
	if st := s.Stats(); st.Generation != 1 || len(st.Listeners) != 1 || st.Listeners[0].Name != "api" || st.Listeners[0].Kind != "http" {
		t.Fatalf("master's Stats %+v; want generation 1 and the api socket", st)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	second := f.child(1)
	if st := s.Stats(); st.Generation != 2 {
		t.Fatalf("master's generation %d after a restart, want 2", st.Generation)
	}
	if got := first.got(); !slices.Equal(got, []os.Signal{sigReplaced}) {
		t.Fatalf("the replaced worker got %v, want SIGWINCH", got)
	}
	if err := s.ReloadCerts(); err != nil {
		t.Fatal(err)
	}
	if got := second.got(); !slices.Equal(got, []os.Signal{sigReload}) {
		t.Fatalf("ReloadCerts sent the current worker %v, want SIGUSR1", got)
	}
	s.beginDrain("test")
	if err := waitServed(t, served); err != nil {
		t.Fatalf("Serve = %v after the worker stopped as asked", err)
	}
	if got := second.got(); !slices.Contains(got, os.Signal(syscall.SIGTERM)) {
		t.Fatalf("the worker got %v, want SIGTERM", got)
	}
}

// The master waits for a replaced worker still draining, and kills one
// that outlives its hammer time.
func TestMasterWaitsForEveryWorker(t *testing.T) {
	f := newFakeOS(t)
	s, served := startMaster(t, f)
	old := f.child(0)
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	current := f.child(1)
	s.beginDrain("test")
	current.end(nil) // the current worker stops at once; the old one drains on
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) while the old worker still ran", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := waitServed(t, served); err != nil {
		t.Fatal(err)
	}
	old.mu.Lock()
	killed := old.killed
	old.mu.Unlock()
	if !killed {
		t.Fatal("the old worker, past hammer time, was not killed")
	}
}

// The kill deadline counts the shutdown delay: a worker serving through
// its delay is not killed before delay + hammer time + slack.
func TestMasterKillDeadlineCountsTheDelay(t *testing.T) {
	f := newFakeOS(t)
	s, served := startMaster(t, f, WithShutdownDelay(time.Second))
	w := f.child(0) // ignores SIGTERM: killed at the deadline
	start := time.Now()
	s.beginDrain("test")
	if err := waitServed(t, served); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	w.mu.Lock()
	killed := w.killed
	w.mu.Unlock()
	if want := time.Second + 400*time.Millisecond; !killed || took < want {
		t.Fatalf("worker killed %v after %v; want killed, not before %v", killed, took, want)
	}
}

// A worker that dies unasked ends the master with ErrWorkerExited.
func TestMasterReportsAWorkerThatDied(t *testing.T) {
	f := newFakeOS(t)
	_, served := startMaster(t, f)
	f.child(0).end(errors.New("signal: killed"))
	if err := waitServed(t, served); !errors.Is(err, ErrWorkerExited) {
		t.Fatalf("Serve = %v, want ErrWorkerExited", err)
	}
}

// Only an init (PID 1) reaps children that are not its workers.
func TestMasterReapsOthersOnlyAsInit(t *testing.T) {
	for _, init := range []bool{false, true} {
		f := newFakeOS(t)
		f.obey = true
		var calls atomic.Int64
		sys := f.osx()
		reaped := map[int]bool{}
		sys.ReapAny = func() (int, error, bool) {
			calls.Add(1)
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, c := range f.children {
				if gone, status := c.Poll(); gone && !reaped[c.pid] {
					reaped[c.pid] = true
					return c.pid, status, true
				}
			}
			return 0, nil, false
		}
		if init {
			sys.Getpid = func() int { return 1 }
		}
		s := newServer(sys, WithSignals(silentSource{}), WithLogger(testLogger(t)), WithMaster())
		s.masterTimings = masterTimings{killSlack: time.Second, reapEvery: 10 * time.Millisecond}
		s.Listen("api", "127.0.0.1:0")
		served := make(chan error, 1)
		go func() { served <- s.Serve() }()
		<-s.Serving()
		w := f.child(0)
		rounds := &w.polls // a worker is polled at each round
		if init {
			rounds = &calls // an init reaps whatever has exited instead
		}
		waitUntil(t, "three reaper rounds", func() bool { return rounds.Load() >= 3 })
		s.beginDrain("test")
		if err := waitServed(t, served); err != nil {
			t.Fatal(err)
		}
		if got := calls.Load() > 0; got != init {
			t.Fatalf("init %v: ReapAny called %d times", init, calls.Load())
		}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
