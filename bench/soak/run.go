//go:build linux

package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/bench/internal/benchutil"
	"github.com/handoff-go/handoff/internal/procfs"
	"github.com/handoff-go/handoff/internal/testcert"
)

// run is one soak.
type run struct {
	restarts   int
	pace       time.Duration
	faultShare float64
	wrk        bool // load the HTTP/1.1 listener with wrk too
	rng        *rand.Rand
	out        string

	bin, dir                    string
	api, tls, echo, grpc, udp   string
	unixPath, pidFile, modeFile string
	certFile, keyFile, logFile  string
	roots                       *x509.CertPool
	ca                          *testcert.CA
	first                       *exec.Cmd
	tl                          *timeline
	restartsOK, restartsFailed  int
	heldByKilled                int
	faultCounts                 map[string]int
	before, after               usage
}

// usage is what a server process holds.
type usage struct {
	PID        int
	FDs        int
	RSSKiB     int
	Goroutines int
}

func (r *run) main() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("subreaper: %w", err)
	}
	dir, cleanup, err := benchutil.TempDir()
	if err != nil {
		return err
	}
	defer cleanup()
	r.dir, r.bin = dir, filepath.Join(dir, "server")
	if out, err := exec.Command("go", "build", "-o", r.bin, "./server").CombinedOutput(); err != nil {
		return fmt.Errorf("building the server: %v\n%s", err, out)
	}
	r.faultCounts = map[string]int{}
	r.tl = newTimeline()
	if err := os.MkdirAll(r.out, 0o755); err != nil {
		return err
	}
	if err := r.start(); err != nil {
		return err
	}
	defer r.killAll()

	// Quiet: what the process holds with no client.
	if _, err := r.restart(); err != nil {
		return err
	}
	if r.before, err = r.usage(); err != nil {
		return err
	}
	stop := r.startClients()
	var pending []int // fault kinds not met yet
	for i := 0; i < r.restarts; i++ {
		time.Sleep(r.pace)
		if r.rng.Float64() < r.faultShare {
			// Every kind once, in a random order, then at random: a short
			// run meets them all.
			if pending == nil {
				pending = r.rng.Perm(len(faults))
			}
			k := r.rng.IntN(len(faults))
			if len(pending) > 0 {
				k, pending = pending[0], pending[1:]
			}
			f := faults[k]
			r.tl.mark("fault", f.name)
			r.faultCounts[f.name]++
			if err := f.run(r); err != nil {
				stop()
				return fmt.Errorf("restart %d, fault %s: %w (log: %s)", i, f.name, err, r.logFile)
			}
			continue
		}
		if _, err := r.restart(); err != nil {
			stop()
			return fmt.Errorf("restart %d: %w (log: %s)", i, err, r.logFile)
		}
	}
	stop()
	if _, err := r.restart(); err != nil {
		return err
	}
	// The last process's drain is over too.
	if r.after, err = r.usage(); err != nil {
		return err
	}
	return r.report()
}

// start writes the certificates and starts the server.
func (r *run) start() error {
	var err error
	if r.ca, err = testcert.NewCA("soak CA"); err != nil {
		return err
	}
	leaf, err := r.ca.Valid("soak", "127.0.0.1")
	if err != nil {
		return err
	}
	if r.certFile, r.keyFile, err = leaf.Write(r.dir); err != nil {
		return err
	}
	r.roots = x509.NewCertPool()
	r.roots.AddCert(r.ca.Cert)
	r.unixPath = filepath.Join(r.dir, "api.sock")
	r.pidFile = filepath.Join(r.dir, "server.pid")
	r.modeFile = filepath.Join(r.dir, "mode")
	r.logFile = filepath.Join(r.out, "soak-server.log")
	os.Remove(r.logFile) // a log of this run only
	// A port found free may be taken by another program's connection
	// before the server binds it: then new ports, three tries.
	for try := 1; ; try++ {
		for _, p := range []*string{&r.api, &r.tls, &r.echo, &r.grpc, &r.udp} {
			if *p, err = benchutil.FreeAddr(); err != nil {
				return err
			}
		}
		err = r.launch()
		if err == nil || try == 3 || !strings.Contains(err.Error(), "address already in use") {
			return err
		}
		fmt.Fprintf(os.Stderr, "soak: %v; again on other ports\n", err)
	}
}

// launch starts the server (again, after a stop).
func (r *run) launch() error {
	logf, err := os.OpenFile(r.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	r.first = exec.Command(r.bin, "-api", r.api, "-echo", r.echo, "-tls", r.tls,
		"-cert", r.certFile, "-key", r.keyFile, "-unix", r.unixPath, "-udp", r.udp, "-grpc", r.grpc,
		"-pidfile", r.pidFile, "-mode", r.modeFile, "-ready-timeout", "3s", "-hammer", "5s")
	r.first.Stdout, r.first.Stderr = logf, logf
	if err := r.first.Start(); err != nil {
		return err
	}
	pid := r.first.Process.Pid
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if r.current() == pid {
			return nil
		}
		if gone(pid) {
			return fmt.Errorf("the server exited at start: %s", lastLine(r.logFile))
		}
	}
	return fmt.Errorf("timed out after 20s waiting for the server to start")
}

// gone reports whether pid has exited (a zombie not reaped yet, or no
// longer there).
func gone(pid int) bool {
	p, ok := procfs.Of(pid)
	return !ok || p.State == "Z"
}

// lastLine is the last line of the file at path, or why there is none.
func lastLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// current is the pid in the PID file, or 0.
func (r *run) current() int {
	b, err := os.ReadFile(r.pidFile)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func (r *run) await(what string, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("timed out after %v waiting for %s", limit, what)
}

// restart sends SIGHUP and waits until a new process serves; it returns
// the new pid.
func (r *run) restart() (int, error) {
	old := r.current()
	if err := syscall.Kill(old, syscall.SIGHUP); err != nil {
		return 0, err
	}
	var now int
	err := r.await("the new process", 30*time.Second, func() bool {
		now = r.current()
		return now != 0 && now != old
	})
	if err != nil {
		return 0, err
	}
	r.restartsOK++
	r.tl.mark("restart", "")
	return now, nil
}

// control asks the server about itself, on a new connection each time:
// a kept-alive one may reach a process that drains.
var control = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// stats is the current process's Stats, through the api listener.
func (r *run) stats() (map[string]any, error) {
	resp, err := control.Get("http://" + r.api + "/stats")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	return m, json.NewDecoder(resp.Body).Decode(&m)
}

func (r *run) restartsFailedNow() int {
	m, err := r.stats()
	if err != nil {
		return -1
	}
	f, _ := m["RestartsFailed"].(float64)
	return int(f)
}

// usage reads what the current process holds, once its predecessors are
// gone.
func (r *run) usage() (usage, error) {
	pid := r.current()
	if err := r.await("the old processes to exit", 30*time.Second, func() bool { return len(r.live()) == 1 }); err != nil {
		return usage{}, err
	}
	u := usage{PID: pid}
	var err error
	if u.FDs, err = procfs.FDs(pid); err != nil {
		return u, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			u.RSSKiB, _ = strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
	resp, err := control.Get("http://" + r.api + "/goroutines")
	if err != nil {
		return u, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	u.Goroutines, _ = strconv.Atoi(string(b))
	return u, nil
}

// connections counts the connected TCP and unix stream sockets pid
// holds: its clients' connections.
func (r *run) connections(pid int) int {
	mine := map[string]bool{}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); err == nil {
			if inode, ok := strings.CutPrefix(l, "socket:["); ok {
				mine[strings.TrimSuffix(inode, "]")] = true
			}
		}
	}
	n := 0
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, _ := os.ReadFile(table)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			// sl local remote st ... inode (the tenth field)
			if f := strings.Fields(line); len(f) > 9 && f[3] != "0A" && mine[f[9]] {
				n++
			}
		}
	}
	b, _ := os.ReadFile("/proc/net/unix")
	for _, line := range strings.Split(string(b), "\n")[1:] {
		// Num RefCount Protocol Flags Type St Inode: a connected stream.
		if f := strings.Fields(line); len(f) > 6 && f[4] == "0001" && f[5] == "03" && mine[f[6]] {
			n++
		}
	}
	return n
}

// live returns the server processes alive, and reaps the dead (orphans
// come to this process, a subreaper). Only server processes are reaped:
// wait4(-1) would also take the exit status of a client this process runs
// (wrk), whose exec.Cmd then fails with "no child processes".
func (r *run) live() []int {
	var live []int
	me, comm := os.Getpid(), filepath.Base(r.bin)
	for _, p := range procfs.All() {
		switch {
		case p.State == "Z" && p.PPID == me && p.Comm == comm:
			syscall.Wait4(p.PID, nil, syscall.WNOHANG, nil)
		case p.Exe == r.bin && p.State != "Z":
			live = append(live, p.PID)
		}
	}
	return live
}

// children returns the live children of pid.
func children(pid int) []int {
	var out []int
	for _, p := range procfs.All() {
		if p.PPID == pid && p.State != "Z" {
			out = append(out, p.PID)
		}
	}
	return out
}

// zombies returns the zombies that server processes left unreaped.
func zombies(servers []int) []int {
	var out []int
	for _, p := range procfs.All() {
		if p.State == "Z" && slices.Contains(servers, p.PPID) {
			out = append(out, p.PID)
		}
	}
	return out
}

// killAll kills every server process left.
func (r *run) killAll() {
	for _, pid := range r.live() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	time.Sleep(100 * time.Millisecond)
	r.live()
}

// report prints the outcome, writes the chart and the numbers, and says
// whether the soak passed.
func (r *run) report() error {
	var problems []string
	fmt.Printf("\n%-14s %12s %8s %s\n", "protocol", "answered", "errors", "explained by faults")
	protos := r.tl.protocols()
	for _, p := range protos {
		ok, bad, explained := r.tl.totals(p, faultWindows(r.tl), true)
		fmt.Printf("%-14s %12d %8d %s\n", p, ok, bad, explainedString(explained))
		if bad > 0 {
			problems = append(problems, fmt.Sprintf("%s: %d errors no fault explains", p, bad))
		}
		if ok == 0 {
			problems = append(problems, p+": nothing answered")
		}
	}
	// Each client holds one connection at a time: the clients that a
	// SIGKILL cost errors can be no more than the connections the killed
	// processes held. QUIC connections hold no descriptor of their own:
	// at most one per HTTP/3 client.
	cut := r.tl.affected("kill-draining", faultWindows(r.tl))
	if bound := r.heldByKilled + r.faultCounts["kill-draining"]*http3Clients; cut > bound {
		problems = append(problems, fmt.Sprintf("SIGKILL of draining processes cut %d clients, more than the %d connections they held", cut, bound))
	}
	fmt.Printf("\nSIGKILL of a draining process (%d times): %d clients cut; the processes held %d connections (+ at most %d QUIC connections each)\n",
		r.faultCounts["kill-draining"], cut, r.heldByKilled, http3Clients)
	fmt.Printf("\nrestarts: %d succeeded, %d failed on purpose; faults: %v\n", r.restartsOK, r.restartsFailed, r.faultCounts)
	live := r.live()
	fmt.Printf("server processes left: %v\n", live)
	if len(live) != 1 {
		problems = append(problems, fmt.Sprintf("%d server processes left, want 1", len(live)))
	}
	if z := zombies(live); len(z) > 0 {
		problems = append(problems, fmt.Sprintf("zombies left by the server: %v", z))
	}
	fmt.Printf("first process (quiet): %d fds, %d KiB RSS, %d goroutines\n", r.before.FDs, r.before.RSSKiB, r.before.Goroutines)
	fmt.Printf("last process (quiet):  %d fds, %d KiB RSS, %d goroutines\n", r.after.FDs, r.after.RSSKiB, r.after.Goroutines)
	// Bounds: no more descriptors; goroutines within a handful (timers
	// and pools come and go); memory within 50% + 16 MiB (the heap of a
	// process that served load is larger than a quiet one's).
	if r.after.FDs > r.before.FDs {
		problems = append(problems, "descriptors grew")
	}
	if r.after.Goroutines > r.before.Goroutines+10 {
		problems = append(problems, "goroutines grew")
	}
	if r.after.RSSKiB > r.before.RSSKiB*3/2+16*1024 {
		problems = append(problems, "memory grew")
	}
	if err := r.write(); err != nil {
		return err
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	fmt.Println("\nPASS")
	return nil
}

func explainedString(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// write writes soak.json and soak.svg.
func (r *run) write() error {
	if err := os.MkdirAll(r.out, 0o755); err != nil {
		return err
	}
	data := map[string]any{
		"restarts": r.restartsOK, "restarts_failed_on_purpose": r.restartsFailed, "faults": r.faultCounts,
		"first": r.before, "last": r.after, "seconds": r.tl.seconds(), "series": r.tl.series(), "events": r.tl.events,
	}
	b, err := json.MarshalIndent(data, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.out, "soak.json"), b, 0o644); err != nil {
		return err
	}
	svg := chart(r.tl, fmt.Sprintf("%d restarts, %d faults", r.restartsOK, total(r.faultCounts)))
	if err := os.WriteFile(filepath.Join(r.out, "soak.svg"), []byte(svg), 0o644); err != nil {
		return err
	}
	fmt.Printf("chart: %s\n", filepath.Join(r.out, "soak.svg"))
	return nil
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// http3Clients is the number of HTTP/3 clients (see startClients).
const http3Clients = 4

// tlsConfig is a client configuration trusting the soak's CA.
func (r *run) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: r.roots, ServerName: "127.0.0.1"}
}
