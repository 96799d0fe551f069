//go:build unix

package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/osx"
	"github.com/handoff-go/handoff/internal/protocol"
	"github.com/handoff-go/handoff/listeners"
)

// behaviour is what a fake child does once started.
type behaviour int

const (
	childReady      behaviour = iota // writes "ready"
	childExit                        // exits with status 3 before ready
	childHang                        // never answers
	childBadMessage                  // writes something else
	childOrphanPipe                  // never answers, and its pipe outlives it, held by a process it started
)

// fakeChild is a child process that never existed.
type fakeChild struct {
	pid    int
	exited chan struct{} // closed when the "process" ends
	once   sync.Once
	status error

	mu      sync.Mutex
	killed  bool
	reaped  bool
	signals []os.Signal
	obeys   bool // exits (status 0) on SIGTERM, SIGINT and SIGWINCH, as a worker does
	polls   atomic.Int64
	watches atomic.Int64
}

func (c *fakeChild) Pid() int { return c.pid }

// watchedChild is a fakeChild whose exit can be watched, as a real one's
// can on Linux.
type watchedChild struct{ *fakeChild }

func (c watchedChild) WatchExit() (<-chan struct{}, func()) {
	c.watches.Add(1)
	return c.exited, func() {}
}

func (c *fakeChild) end(status error) {
	c.once.Do(func() { c.status = status; close(c.exited) })
}

func (c *fakeChild) Kill() error {
	c.mu.Lock()
	c.killed = true
	c.mu.Unlock()
	c.end(errors.New("signal: killed"))
	return nil
}

func (c *fakeChild) Signal(sig os.Signal) error {
	if sig == os.Kill {
		return c.Kill()
	}
	c.mu.Lock()
	c.signals = append(c.signals, sig)
	obeys := c.obeys
	c.mu.Unlock()
	if obeys && (sig == syscall.SIGTERM || sig == syscall.SIGINT || sig == syscall.SIGWINCH) {
		c.end(nil)
	}
	return nil
}

func (c *fakeChild) got() []os.Signal {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]os.Signal(nil), c.signals...)
}

func (c *fakeChild) Poll() (bool, error) {
	c.polls.Add(1)
	select {
	case <-c.exited:
		return true, c.Wait()
	default:
		return false, nil
	}
}

func (c *fakeChild) Wait() error {
	<-c.exited
	c.mu.Lock()
	c.reaped = true
	c.mu.Unlock()
	return c.status
}

// fakeOS starts fake children and records what they were given.
type fakeOS struct {
	t *testing.T

	mu       sync.Mutex
	env      map[string]string
	ppid     int
	next     behaviour
	obey     bool // children exit when told to stop
	watch    bool // children can be watched (watchedChild)
	startErr error
	children []*fakeChild
	envs     [][]string
	fdKinds  [][]string // per start: what each passed descriptor from 3 on is
	started  chan *fakeChild
}

func newFakeOS(t *testing.T) *fakeOS {
	return &fakeOS{t: t, env: map[string]string{}, ppid: 1, started: make(chan *fakeChild, 16)}
}

func (f *fakeOS) osx() *osx.OS {
	return &osx.OS{
		LookupEnv: func(k string) (string, bool) {
			f.mu.Lock()
			defer f.mu.Unlock()
			v, ok := f.env[k]
			return v, ok
		},
		Unsetenv: func(k string) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			delete(f.env, k)
			return nil
		},
		Environ:    func() []string { return []string{"HOME=/nowhere", "ENDLESS_SOCKET_ORDER=stale"} },
		Getpid:     os.Getpid,
		Getppid:    func() int { f.mu.Lock(); defer f.mu.Unlock(); return f.ppid },
		Executable: func() (string, error) { return "/fake/binary", nil },
		Getwd:      func() (string, error) { return "/", nil },
		Start:      f.start,
		Alive:      func(pid int) bool { return pid == f.ppid },
		Signal:     func(int, os.Signal) error { return nil },
		ReapAny:    func() (int, error, bool) { return 0, nil, false },
	}
}

func (f *fakeOS) setNext(b behaviour) { f.mu.Lock(); f.next = b; f.mu.Unlock() }

func (f *fakeOS) start(exe string, argv, env []string, dir string, files []*os.File) (osx.Process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startErr != nil {
		return nil, f.startErr
	}
	var kinds []string
	for _, file := range files[3:] {
		kinds = append(kinds, fdKind(f.t, int(file.Fd())))
	}
	// The caller closes its copies once Start returns; keep the pipe.
	wfd, err := unix.Dup(int(files[len(files)-1].Fd()))
	if err != nil {
		return nil, err
	}
	w := os.NewFile(uintptr(wfd), "ready-w")
	c := &fakeChild{pid: 100000 + len(f.children), exited: make(chan struct{}), obeys: f.obey}
	f.children = append(f.children, c)
	f.envs = append(f.envs, env)
	f.fdKinds = append(f.fdKinds, kinds)
	switch f.next {
	case childReady:
		w.Write([]byte(protocol.ReadyMessage))
		w.Close()
	case childExit:
		w.Close()
		c.end(errors.New("exit status 3"))
	case childHang:
		go func() { <-c.exited; w.Close() }()
	case childBadMessage:
		w.Write([]byte("nope!"))
		w.Close()
	case childOrphanPipe:
		f.t.Cleanup(func() { w.Close() })
	}
	f.started <- c
	if f.watch {
		return watchedChild{c}, nil
	}
	return c, nil
}

// fdKind describes a descriptor: "listen" for a listening TCP socket that
// is non-blocking, "pipe", or what is wrong with it.
func fdKind(t *testing.T, fd int) string {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err.Error()
	}
	if st.Mode&unix.S_IFMT == unix.S_IFIFO {
		return "pipe"
	}
	acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil || acc != 1 {
		return "not listening"
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_NONBLOCK == 0 {
		return "listen (blocking)"
	}
	return "listen"
}

// silentSource never delivers a signal.
type silentSource struct{}

func (silentSource) Notify(chan<- os.Signal, ...os.Signal) {}
func (silentSource) Stop(chan<- os.Signal)                 {}

func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
}

// startServer serves one HTTP listener on 127.0.0.1 with fake OS calls.
func startServer(t *testing.T, f *fakeOS, opts ...Option) (*Server, chan error) {
	t.Helper()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	opts = append([]Option{WithSignals(silentSource{}), WithLogger(testLogger(t)), WithHammerTime(5 * time.Second),
		WithHandler(ok)}, opts...)
	s := newServer(f.osx(), opts...)
	s.Listen("api", "127.0.0.1:0", nil)
	served := serveInBackground(t, s)
	t.Cleanup(func() {
		s.beginDrain("test over")
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return s, served
}

// serveInBackground runs s.Serve on a goroutine and returns once s serves,
// with the channel Serve's result will come on.
func serveInBackground(t *testing.T, s *Server) chan error {
	t.Helper()
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	select {
	case <-s.Serving():
	case err := <-served:
		t.Fatalf("Serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not serving after 10s")
	}
	return served
}

func get(t *testing.T, s *Server) string {
	t.Helper()
	addr := s.Addr("api")
	if addr == nil {
		t.Fatal("no api listener")
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr.String() + "/")
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.Status
}

func waitServed(t *testing.T, served chan error) error {
	t.Helper()
	select {
	case err := <-served:
		served <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the handoff")
		return nil
	}
}

func TestRestartHandsOff(t *testing.T) {
	f := newFakeOS(t)
	s, served := startServer(t, f)
	if err := s.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if err := waitServed(t, served); err != nil {
		t.Fatalf("Serve after handoff: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.children) != 1 {
		t.Fatalf("%d children started, want 1", len(f.children))
	}
	if got := f.fdKinds[0]; !slices.Equal(got, []string{"listen", "pipe"}) {
		t.Fatalf("descriptors passed from 3 on: %v, want [listen pipe]", got)
	}
	env := f.envs[0]
	for _, want := range []string{"ENDLESS_SOCKET_ORDER=api", "ENDLESS_GENERATION=1", "HOME=/nowhere"} {
		if !slices.Contains(env, want) {
			t.Errorf("child env lacks %q: %v", want, env)
		}
	}
	if !slices.Contains(env, "ENDLESS_PARENT_PID="+strconv.Itoa(os.Getpid())) {
		t.Errorf("child env lacks the parent pid: %v", env)
	}
	if slices.Contains(env, "ENDLESS_SOCKET_ORDER=stale") {
		t.Errorf("child env kept a stale manifest: %v", env)
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, protocol.EnvFamily+"=") {
			t.Errorf("a program without companions passed a family secret: %v", env)
		}
	}
	if !s.handedOff {
		t.Error("handedOff not set")
	}
}

func TestRestartFailuresKeepServing(t *testing.T) {
	tests := []struct {
		name       string
		next       behaviour
		wantErr    error
		wantKilled bool
	}{
		// A child that exited is reaped, not signalled: its pid may be
		// another process's by now. Its own status is reported.
		{"child exits", childExit, ErrChildExited, false},
		{"child hangs", childHang, ErrChildTimeout, true},
		{"bad message", childBadMessage, ErrRestartFailed, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeOS(t)
			s, served := startServer(t, f, WithReadyTimeout(300*time.Millisecond))
			f.setNext(tt.next)
			err := s.Restart()
			if !errors.Is(err, tt.wantErr) || !errors.Is(err, ErrRestartFailed) {
				t.Fatalf("Restart = %v, want %v", err, tt.wantErr)
			}
			c := f.children[0]
			c.mu.Lock()
			reaped, killed := c.reaped, c.killed
			c.mu.Unlock()
			if !reaped || killed != tt.wantKilled {
				t.Fatalf("failed child: reaped %v, killed %v; want reaped, killed %v", reaped, killed, tt.wantKilled)
			}
			if tt.next == childExit && !strings.Contains(err.Error(), "exit status 3") {
				t.Fatalf("Restart = %v; want the child's own status, exit status 3", err)
			}
			stillServing(t, s, served)
			// The next restart works.
			f.setNext(childReady)
			if err := s.Restart(); err != nil {
				t.Fatalf("second Restart: %v", err)
			}
			if err := waitServed(t, served); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// stillServing fails t unless s answers and its Serve has not returned,
// as after a failed restart.
func stillServing(t *testing.T, s *Server, served <-chan error) {
	t.Helper()
	if st := get(t, s); st != "200 OK" {
		t.Fatalf("after a failed restart: %s", st)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned after a failed restart: %v", err)
	default:
	}
}

// A child that dies while a process it started holds its readiness pipe
// is seen dead, by its own status, long before the ready timeout: watched
// where it can be (a watch closes a channel, so the child is polled only
// once, to be reaped), polled where it cannot.
func TestChildExitSeenWhileItsPipeIsHeld(t *testing.T) {
	defer func(d time.Duration) { exitWatchAfter = d }(exitWatchAfter)
	exitWatchAfter = 0
	for _, watch := range []bool{true, false} {
		t.Run(map[bool]string{true: "watched", false: "polled"}[watch], func(t *testing.T) {
			f := newFakeOS(t)
			f.watch = watch
			s, served := startServer(t, f, WithReadyTimeout(time.Minute))
			f.setNext(childOrphanPipe)
			res := make(chan error, 1)
			go func() { res <- s.Restart() }()
			c := <-f.started
			c.end(errors.New("exit status 4"))
			var err error
			select {
			case err = <-res:
			case <-time.After(20 * time.Second):
				t.Fatal("the child's exit was not seen within 20s")
			}
			if !errors.Is(err, ErrChildExited) || !strings.Contains(err.Error(), "exit status 4") {
				t.Fatalf("Restart = %v; want ErrChildExited with exit status 4", err)
			}
			polls, watches := c.polls.Load(), c.watches.Load()
			if watch && (watches != 1 || polls != 1) || !watch && polls < 2 {
				t.Fatalf("watched %d times, polled %d times", watches, polls)
			}
			c.mu.Lock()
			reaped, killed := c.reaped, c.killed
			c.mu.Unlock()
			if !reaped || killed {
				t.Fatalf("dead child: reaped %v, killed %v; want reaped, not killed", reaped, killed)
			}
			stillServing(t, s, served)
		})
	}
}

// A child that gets ready within exitWatchAfter is neither watched nor
// polled: the parent spends nothing on it while it starts.
func TestQuickChildIsNotWatched(t *testing.T) {
	defer func(d time.Duration) { exitWatchAfter = d }(exitWatchAfter)
	exitWatchAfter = time.Minute
	f := newFakeOS(t)
	f.watch = true
	s, served := startServer(t, f)
	f.setNext(childReady)
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	c := f.children[0]
	if w, p := c.watches.Load(), c.polls.Load(); w != 0 || p != 0 {
		t.Fatalf("a child ready at once was watched %d times and polled %d times", w, p)
	}
	if err := waitServed(t, served); err != nil {
		t.Fatal(err)
	}
}

func TestRestartStartErrorKeepsServing(t *testing.T) {
	f := newFakeOS(t)
	s, _ := startServer(t, f)
	f.startErr = syscall.ENOENT
	if err := s.Restart(); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("Restart = %v, want ENOENT", err)
	}
	if st := get(t, s); st != "200 OK" {
		t.Fatalf("after a failed start: %s", st)
	}
}

func TestOneRestartAtATime(t *testing.T) {
	f := newFakeOS(t)
	s, served := startServer(t, f, WithReadyTimeout(time.Minute))
	f.setNext(childHang)
	first := make(chan error, 1)
	go func() { first <- s.Restart() }()
	c := <-f.started
	for range 5 {
		if err := s.Restart(); !errors.Is(err, ErrRestartInProgress) {
			t.Fatalf("concurrent Restart = %v, want ErrRestartInProgress", err)
		}
	}
	// A shutdown during the restart gives the child up and drains.
	go s.Shutdown(t.Context())
	if err := <-first; !errors.Is(err, ErrDraining) {
		t.Fatalf("Restart during shutdown = %v, want ErrDraining", err)
	}
	if !c.killed || !c.reaped {
		t.Fatalf("child killed %v, reaped %v", c.killed, c.reaped)
	}
	if err := waitServed(t, served); err != nil {
		t.Fatal(err)
	}
	if n := len(f.children); n != 1 {
		t.Fatalf("%d children started, want 1", n)
	}
	if err := s.Restart(); !errors.Is(err, ErrNotServing) && !errors.Is(err, ErrDraining) {
		t.Fatalf("Restart after stop = %v", err)
	}
}

func TestRestartBeforeServe(t *testing.T) {
	s := newServer(newFakeOS(t).osx(), WithSignals(silentSource{}), WithLogger(testLogger(t)))
	if err := s.Restart(); !errors.Is(err, ErrNotServing) {
		t.Fatalf("Restart before Serve = %v, want ErrNotServing", err)
	}
}

// The PID file changes only when a restart works: the parent names the
// child in it once the child is ready, and never otherwise. The file the
// parent stages while the child starts is gone either way.
func TestRestartNamesTheChildInThePIDFile(t *testing.T) {
	f := newFakeOS(t)
	dir := t.TempDir()
	pidFile := dir + "/pid"
	s, served := startServer(t, f, WithPIDFile(pidFile), WithReadyTimeout(300*time.Millisecond))
	names := func() string {
		t.Helper()
		if ents, err := os.ReadDir(dir); err != nil || len(ents) != 1 {
			t.Fatalf("the PID file's directory holds %v (%v), want the PID file alone", ents, err)
		}
		b, _ := os.ReadFile(pidFile)
		return strings.TrimSpace(string(b))
	}
	if got := names(); got != strconv.Itoa(os.Getpid()) {
		t.Fatalf("PID file names %q, want this process", got)
	}
	for _, b := range []behaviour{childExit, childHang, childBadMessage} {
		f.setNext(b)
		if err := s.Restart(); err == nil {
			t.Fatal("Restart of a failing child succeeded")
		}
		if got := names(); got != strconv.Itoa(os.Getpid()) {
			t.Fatalf("after a failed restart the PID file names %q", got)
		}
	}
	if st := s.Stats(); st.RestartsFailed != 3 || st.RestartsSucceeded != 0 {
		t.Fatalf("restarts: %d failed, %d succeeded; want 3 and 0", st.RestartsFailed, st.RestartsSucceeded)
	}
	f.setNext(childReady)
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.RestartsSucceeded != 1 || !st.Draining {
		t.Fatalf("after the handoff: %d succeeded, draining %v", st.RestartsSucceeded, st.Draining)
	}
	f.mu.Lock()
	child := f.children[len(f.children)-1].pid
	f.mu.Unlock()
	if got := names(); got != strconv.Itoa(child) {
		t.Fatalf("after the handoff the PID file names %q, want the child %d", got, child)
	}
	if err := waitServed(t, served); err != nil {
		t.Fatal(err)
	}
	if got := names(); got != strconv.Itoa(child) {
		t.Fatalf("the drained parent changed the PID file to %q", got)
	}
	if d := s.Stats().Drain; d <= 0 {
		t.Fatalf("Stats().Drain = %v after the drain", d)
	}
}

// A restart asked for while the process is still starting (a SIGHUP sent
// the moment the PID file named it) waits until the process serves,
// instead of being dropped.
func TestRestartWhileStartingWaits(t *testing.T) {
	f := newFakeOS(t)
	release := make(chan struct{})
	s := newServer(f.osx(), WithSignals(silentSource{}), WithLogger(testLogger(t)))
	s.Listen("own", "127.0.0.1:0", listeners.Serve(func(ln net.Listener) error {
		<-release // not accepting yet: the process does not serve
		for {
			c, err := ln.Accept()
			if err != nil {
				return nil
			}
			c.Close()
		}
	}, func(context.Context) error { return nil }))
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	waitUntil(t, "the listener to be open", func() bool { return s.Addr("own") != nil })
	restarted := make(chan error, 1)
	go func() { restarted <- s.Restart() }()
	select {
	case err := <-restarted:
		t.Fatalf("Restart returned %v while the process was starting", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-restarted; err != nil {
		t.Fatalf("Restart once serving: %v", err)
	}
	if err := waitServed(t, served); err != nil {
		t.Fatal(err)
	}
}

// recordingSource remembers which signals are subscribed.
type recordingSource struct {
	mu   sync.Mutex
	subs map[chan<- os.Signal][]os.Signal
}

func (r *recordingSource) Notify(c chan<- os.Signal, sig ...os.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.subs == nil {
		r.subs = map[chan<- os.Signal][]os.Signal{}
	}
	r.subs[c] = append(r.subs[c], sig...)
}

func (r *recordingSource) Stop(c chan<- os.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.subs, c)
}

func (r *recordingSource) has(sig os.Signal) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, sigs := range r.subs {
		if slices.Contains(sigs, sig) {
			return true
		}
	}
	return false
}

// TestSignalsSubscribedBeforeServing: once Serving is closed (and READY=1
// sent), SIGTERM and SIGHUP are routed: a supervisor that signals at once
// must not meet their default action, the end of the process.
func TestSignalsSubscribedBeforeServing(t *testing.T) {
	src := &recordingSource{}
	s, _ := startServer(t, newFakeOS(t), WithSignals(src))
	<-s.Serving()
	for _, sig := range []os.Signal{syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT} {
		if !src.has(sig) {
			t.Errorf("%v not subscribed once serving", sig)
		}
	}
}
