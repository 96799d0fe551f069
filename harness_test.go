//go:build linux

package handoff_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/procfs"
)

// testBin is the server binary the end-to-end tests run, built once, in
// binDir.
var testBin, binDir string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	// Orphans of a handoff (each new process, once its parent exits) are
	// re-parented to this test, so it can reap them and see any zombie.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "cannot become a child subreaper:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "handoff-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	testBin = filepath.Join(dir, "testbin")
	if err := buildTestBin(testBin, "1"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// buildTestBin builds internal/testbin into out, reporting version.
func buildTestBin(out, version string) error {
	args := []string{"build", "-o", out, "-ldflags", "-X main.version=" + version}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./internal/testbin")...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, b)
	}
	return nil
}

// server is one run of the test binary and its successors.
type server struct {
	t        *testing.T
	dir      string
	bin      string
	api      string // address of the api listener
	echo     string // address of the echo listener
	pidFile  string
	modeFile string
	logFile  string
	first    *exec.Cmd
	firstPID int

	mu    sync.Mutex
	known map[int]bool // every pid that served, to kill at the end
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer runs the test binary with an api and an echo listener on
// free 127.0.0.1 ports, waits until it serves, and arranges for every
// process of the run to be killed and reaped at the end of the test.
func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	return launch(t, launchOpts{}, extra...)
}

// launchOpts varies how the server is started: under a wrapper command
// (prefix), with more environment, and with its own test of readiness.
type launchOpts struct {
	prefix []string
	env    []string
	// trigger, if set, runs once the process has started (a wrapper such
	// as systemd-socket-activate starts the server on a first connection).
	trigger func(s *server)
	// ready reports that the server serves; by default the PID file names
	// the process started.
	ready func(s *server) bool
	// ownGroup starts the server in a process group of its own, as a
	// shell does for a foreground job.
	ownGroup bool
	// dir is the working directory to start in.
	dir string
	// bin, if set, is the program to run (relative to dir), instead of a
	// copy of the test binary.
	bin string
}

func launch(t *testing.T, o launchOpts, extra ...string) *server {
	t.Helper()
	dir := t.TempDir()
	s := &server{
		t:        t,
		dir:      dir,
		bin:      filepath.Join(dir, "server"),
		pidFile:  filepath.Join(dir, "server.pid"),
		modeFile: filepath.Join(dir, "mode"),
		logFile:  filepath.Join(dir, "server.log"),
		known:    map[int]bool{},
	}
	// A copy per test, so a test may replace it on disk.
	data, err := os.ReadFile(testBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.killAll)
	ready := o.ready
	if ready == nil {
		ready = func(s *server) bool { return s.pidFromFile() == s.firstPID }
	}
	// A free port may be taken by another test's process between the
	// look for it and the server's bind: a server that exits for that
	// reason before it serves is started again on other ports.
	for attempt := 1; ; attempt++ {
		s.api, s.echo = freeAddr(t), freeAddr(t)
		s.start(o, extra)
		lostPort := false
		waitFor(t, 20*time.Second, "the server to serve", func() bool {
			lostPort = s.lostPort()
			return lostPort || ready(s)
		})
		if !lostPort || attempt == 3 {
			if lostPort {
				t.Fatalf("the server could not bind its ports %d times", attempt)
			}
			return s
		}
		s.first.Wait()
		s.mu.Lock()
		delete(s.known, s.firstPID) // reaped: its pid may be another process's soon
		s.mu.Unlock()
		t.Logf("the server lost a port to another process (%s, %s); starting it again", s.api, s.echo)
	}
}

// start runs the first process of s, its output going to the log.
func (s *server) start(o launchOpts, extra []string) {
	s.t.Helper()
	logf, err := os.Create(s.logFile)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{"-api", s.api, "-echo", s.echo, "-pidfile", s.pidFile, "-mode", s.modeFile}, extra...)
	run := s.bin
	if o.bin != "" {
		run = o.bin
	}
	argv := append(append(append([]string(nil), o.prefix...), run), args...)
	s.first = exec.Command(argv[0], argv[1:]...)
	s.first.Stdout, s.first.Stderr = logf, logf
	s.first.Env = append(append(os.Environ(), "GORACE=atexit_sleep_ms=0"), o.env...)
	s.first.SysProcAttr = &syscall.SysProcAttr{Setpgid: o.ownGroup}
	s.first.Dir = o.dir
	if err := s.first.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.firstPID = s.first.Process.Pid
	s.remember(s.firstPID)
	if o.trigger != nil {
		o.trigger(s)
	}
}

// lostPort reports whether the first process has exited because an
// address it was to listen on was in use.
func (s *server) lostPort() bool {
	if p, ok := procfs.Of(s.firstPID); ok && p.State != "Z" {
		return false
	}
	b, _ := os.ReadFile(s.logFile)
	return strings.Contains(strings.ToLower(string(b)), "address already in use")
}

func (s *server) remember(pid int) {
	s.mu.Lock()
	s.known[pid] = true
	s.mu.Unlock()
}

// killAll kills and reaps every process of the run that is still there:
// the ones the test learned of, and any other that runs the test's own
// binary (a master's worker the test never asked about, say).
func (s *server) killAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pid := range s.running() {
		s.known[pid] = true
	}
	// A program's own children go too, or they end as zombies of the
	// test. The processes are stopped first, so that none starts a
	// child between the look for children and the kill.
	for pid := range s.known {
		syscall.Kill(pid, syscall.SIGSTOP)
	}
	waitStopped(s.known)
	for _, pid := range below(s.known) {
		s.known[pid] = true
	}
	for pid := range s.known {
		if syscall.Kill(pid, 0) == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	s.first.Wait()
	for pid := range s.known {
		if pid == s.firstPID {
			continue
		}
		reapGone(pid)
	}
	if s.t.Failed() {
		if b, err := os.ReadFile(s.logFile); err == nil {
			s.t.Logf("server log, warnings and errors:\n%s", warnings(b, 40))
			if w := ofWarners(b, 80); w != "" {
				s.t.Logf("server log, every line of the processes that warned:\n%s", w)
			}
			if dir := os.Getenv("HANDOFF_TEST_KEEP_LOGS"); dir != "" {
				name := strings.ReplaceAll(s.t.Name(), "/", "_") + ".log"
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
					s.t.Log(err)
				}
			}
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			s.t.Logf("server log (tail):\n%s", b)
		}
	}
}

// warnings returns the lines of log at level warn or error, the first
// three of each message, max lines at most.
func warnings(log []byte, max int) string {
	var b strings.Builder
	seen := map[string]int{}
	n := 0
	for line := range strings.Lines(string(log)) {
		if n == max {
			break
		}
		if !strings.Contains(line, `"level":"warn"`) && !strings.Contains(line, `"level":"error"`) {
			continue
		}
		_, msg, _ := strings.Cut(line, `"message":`)
		if seen[msg]++; seen[msg] > 3 {
			continue
		}
		b.WriteString(line)
		n++
	}
	return b.String()
}

// ofWarners returns every line of log from the processes that logged a
// warning or an error, max lines at most: what each of them did before
// and after.
func ofWarners(log []byte, max int) string {
	pidOf := func(line string) string {
		_, rest, ok := strings.Cut(line, `"pid":`)
		if !ok {
			return ""
		}
		n, _, _ := strings.Cut(rest, ",")
		return n
	}
	// The tests' certificates are valid for an hour: every TLS process
	// warns that its certificate expires soon, which says nothing.
	const expiring = `"message":"certificate expires soon"`
	warned := map[string]bool{}
	for line := range strings.Lines(string(log)) {
		if strings.Contains(line, expiring) {
			continue
		}
		if strings.Contains(line, `"level":"warn"`) || strings.Contains(line, `"level":"error"`) {
			if p := pidOf(line); p != "" {
				warned[p] = true
			}
		}
	}
	var b strings.Builder
	n := 0
	for line := range strings.Lines(string(log)) {
		if n == max {
			break
		}
		if warned[pidOf(line)] && !strings.Contains(line, expiring) {
			b.WriteString(line)
			n++
		}
	}
	return b.String()
}

// waitStopped waits (2 s at most) until every process of pids is
// stopped, a zombie or gone.
func waitStopped(pids map[int]bool) {
	deadline := time.Now().Add(2 * time.Second)
	for pid := range pids {
		for time.Now().Before(deadline) {
			if p, ok := procfs.Of(pid); !ok || strings.ContainsAny(p.State, "TtZX") {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// below lists the processes below those of roots, at any depth.
func below(roots map[int]bool) []int {
	children := map[int][]int{}
	for _, p := range procfs.All() {
		children[p.PPID] = append(children[p.PPID], p.PID)
	}
	var out []int
	var walk func(int)
	walk = func(pid int) {
		for _, c := range children[pid] {
			if !roots[c] {
				out = append(out, c)
			}
			walk(c)
		}
	}
	for pid := range roots {
		walk(pid)
	}
	return out
}

// reapGone waits (5 s at most) until the killed process pid is gone: a
// child of the test is reaped; a grandchild whose parent was killed with
// it becomes the test's child (the test is their subreaper) a moment
// later, and is reaped then, not left a zombie for the next test to find.
func reapGone(pid int) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		switch {
		case got == pid:
			return
		case errors.Is(err, unix.ECHILD):
			if _, ok := procfs.Of(pid); !ok {
				return // gone, reaped by its own parent
			}
		case err != nil && !errors.Is(err, unix.EINTR):
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// running lists the processes whose program is a file in the test's
// directory (the copy of the test binary, or one a test put there), even
// if it has been replaced or removed since.
func (s *server) running() []int {
	var out []int
	for _, p := range procfs.All() {
		if strings.HasPrefix(p.Exe, s.dir+string(filepath.Separator)) {
			out = append(out, p.PID)
		}
	}
	return out
}

func (s *server) pidFromFile() int {
	b, err := os.ReadFile(s.pidFile)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// current is the pid the PID file names.
func (s *server) current() int {
	s.t.Helper()
	pid := s.pidFromFile()
	if pid == 0 {
		s.t.Fatal("no PID file")
	}
	s.remember(pid)
	return pid
}

func (s *server) setMode(mode string) {
	s.t.Helper()
	if err := os.WriteFile(s.modeFile, []byte(mode), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func (s *server) signal(pid int, sig syscall.Signal) {
	s.t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		s.t.Fatalf("kill -%d %d: %v", sig, pid, err)
	}
}

// waitExit reaps pid, which must exit within timeout, and returns its
// exit status.
func (s *server) waitExit(pid int, timeout time.Duration) int {
	s.t.Helper()
	done := make(chan int, 1)
	go func() {
		if pid == s.firstPID {
			s.first.Wait()
			done <- s.first.ProcessState.ExitCode()
			return
		}
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				done <- -1000
				return
			}
			done <- ws.ExitStatus()
			return
		}
	}()
	select {
	case code := <-done:
		if code == -1000 {
			s.t.Fatalf("pid %d is not a child of the test to reap", pid)
		}
		return code
	case <-time.After(timeout):
		syscall.Kill(pid, syscall.SIGKILL)
		<-done
		s.t.Fatalf("pid %d did not exit within %v", pid, timeout)
		return -1
	}
}

// restart sends SIGHUP to the serving process, waits until it has handed
// off and exited, and returns the new pid.
func (s *server) restart() int {
	s.t.Helper()
	old := s.current()
	s.signal(old, syscall.SIGHUP)
	if code := s.waitExit(old, 30*time.Second); code != 0 {
		s.t.Fatalf("old process %d exited with %d", old, code)
	}
	now := s.current()
	if now == old {
		s.t.Fatalf("PID file still names %d after the handoff", old)
	}
	return now
}

// logged returns the first log line of pid with message msg, decoded, or
// nil.
func (s *server) logged(pid int, msg string) map[string]any {
	sc := bufio.NewScanner(strings.NewReader(s.log()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["pid"] == float64(pid) && line["message"] == msg {
			return line
		}
	}
	return nil
}

// childStarted waits until pid logs that it started a child, and returns
// the child's pid.
func (s *server) childStarted(pid int) int {
	s.t.Helper()
	var line map[string]any
	waitFor(s.t, 20*time.Second, "a child to start", func() bool {
		line = s.logged(pid, "child started")
		return line != nil
	})
	child := int(line["child"].(float64))
	s.remember(child)
	return child
}

func (s *server) log() string {
	b, _ := os.ReadFile(s.logFile)
	return string(b)
}

// logCount counts the log lines of pid with message msg.
func (s *server) logCount(pid int, msg string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(s.log()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			PID     int    `json:"pid"`
			Message string `json:"message"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.PID == pid && line.Message == msg {
			n++
		}
	}
	return n
}

func (s *server) stats() map[string]any {
	s.t.Helper()
	var st map[string]any
	body, err := fetch(s.api, "/stats")
	if err != nil {
		s.t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		s.t.Fatal(err)
	}
	return st
}

// waitFor polls cond every 10ms until it holds or timeout passes: the
// processes under test are observed from outside, through files and
// sockets, which have no other way to say that something happened.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var oneShot = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// fetch makes one request on a new connection (so nothing is retried).
func fetch(addr, path string) (string, error) {
	resp, err := oneShot.Get("http://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", path, resp.Status)
	}
	return string(body), nil
}

// load is a set of clients running until stopped, counting failures.
type load struct {
	ok, failed atomic.Int64
	stop       chan struct{}
	wg         sync.WaitGroup
	mu         sync.Mutex
	errs       []string
}

func (l *load) fail(kind string, err error) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.errs) < 10 {
		l.errs = append(l.errs, kind+": "+err.Error())
	}
	l.mu.Unlock()
}

// startLoad runs, until stopped or for at most limit: perRequest clients
// that open a new connection for every request, keepAlive clients that
// reuse one connection and reconnect only when the server says
// Connection: close, and echo clients of the TCP listener. No client
// retries anything.
func startLoad(s *server, perRequest, keepAlive, echo int, limit time.Duration) *load {
	l := &load{stop: make(chan struct{})}
	deadline := time.Now().Add(limit)
	running := func() bool {
		select {
		case <-l.stop:
			return false
		default:
			return time.Now().Before(deadline)
		}
	}
	for range perRequest {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for running() {
				if body, err := fetch(s.api, "/"); err != nil || body != "ok" {
					l.fail("per-request", fmt.Errorf("%q %v", body, err))
				} else {
					l.ok.Add(1)
				}
			}
		}()
	}
	for range keepAlive {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			var c net.Conn
			var br *bufio.Reader
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for running() {
				if c == nil {
					var err error
					if c, err = net.DialTimeout("tcp", s.api, 5*time.Second); err != nil {
						l.fail("keep-alive dial", err)
						continue
					}
					br = bufio.NewReader(c)
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				resp, err := roundTrip(c, br)
				if err != nil {
					l.fail("keep-alive", err)
					c.Close()
					c = nil
					continue
				}
				l.ok.Add(1)
				if resp.Close {
					c.Close()
					c = nil
				}
			}
		}()
	}
	for range echo {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			buf := make([]byte, 5)
			for running() {
				if err := echoOnce(s.echo, buf); err != nil {
					l.fail("echo", err)
				} else {
					l.ok.Add(1)
				}
			}
		}()
	}
	return l
}

func roundTrip(c net.Conn, br *bufio.Reader) (*http.Response, error) {
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil && (resp.StatusCode != 200 || string(body) != "ok") {
		err = fmt.Errorf("%s %q", resp.Status, body)
	}
	return resp, err
}

func echoOnce(addr string, buf []byte) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if !bytes.Equal(buf, []byte("ping\n")) {
		return fmt.Errorf("echo said %q", buf)
	}
	return nil
}

// finish stops the clients and fails the test if any request failed.
func (l *load) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	t.Logf("load: %d requests answered, %d failed", l.ok.Load(), l.failed.Load())
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d requests failed; first ones: %q", n, l.errs)
	}
	if l.ok.Load() == 0 {
		t.Error("no request was answered at all")
	}
}

// fdCount is the number of open descriptors of pid.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	n, err := procfs.FDs(pid)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// descendants lists the live processes running bin and the zombies
// among this test's children.
func descendants(t *testing.T, bin string) (live []int, zombies []int) {
	t.Helper()
	me := os.Getpid()
	for _, p := range procfs.All() {
		switch {
		case p.State == "Z" && p.PPID == me:
			zombies = append(zombies, p.PID)
		case p.Exe == bin:
			live = append(live, p.PID)
		}
	}
	return live, zombies
}
