//go:build linux

// Command restart measures what clients see while a handoff server
// restarts under load.
//
// It builds the test server, starts it on 127.0.0.1, drives it with wrk
// (HTTP/1.1, keep-alive or Connection: close) or h2load (HTTP/2 over TLS)
// for -duration while sending SIGHUP every -interval, and fires -slow
// requests of 2 seconds just before each restart. It reports requests,
// socket errors by kind, non-2xx answers, cut slow requests, the time from
// SIGHUP until the new process answers (median and max) and the server
// processes left, and exits 1 if any client saw an error.
//
//	go run ./bench/restart -mode keepalive
//	go run ./bench/restart -mode close
//	go run ./bench/restart -mode h2
//
// With -server it measures another program instead, one that takes the
// same -api, -pidfile and -hammer flags and serves the same /, /pid and
// /slow routes: the peers of bench/peers (see its README), for a side by
// side comparison; -signal names the signal that restarts it.
//
// wrk and h2load come from Debian's wrk and nghttp2-client packages.
package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/bench/internal/benchutil"
	"github.com/handoff-go/handoff/internal/procfs"
	"github.com/handoff-go/handoff/internal/testcert"
)

func main() {
	mode := flag.String("mode", "keepalive", "keepalive, close, h2, or idle (no load: the cost of the restarts alone)")
	duration := flag.Duration("duration", 30*time.Second, "how long to load the server")
	interval := flag.Duration("interval", time.Second, "time between restarts")
	conns := flag.Int("conns", 50, "client connections")
	threads := flag.Int("threads", 2, "client threads")
	slow := flag.Int("slow", 4, "2-second requests in flight at each restart")
	server := flag.String("server", "", "measure this binary instead of handoff's test server (keepalive and close modes)")
	sigName := flag.String("signal", "HUP", "the signal that restarts the server: HUP or USR2")
	flag.Parse()
	sig := syscall.SIGHUP
	if *sigName == "USR2" {
		sig = syscall.SIGUSR2
	} else if *sigName != "HUP" {
		fmt.Fprintln(os.Stderr, "bench: -signal is HUP or USR2")
		os.Exit(2)
	}
	if err := run(*mode, *server, sig, *duration, *interval, *conns, *threads, *slow); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(mode, server string, sig syscall.Signal, duration, interval time.Duration, conns, threads, slowN int) error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("subreaper: %w", err)
	}
	var bin, dir string
	var cleanup func()
	var err error
	if server == "" {
		bin, dir, cleanup, err = benchutil.BuildServer()
	} else if mode == "h2" {
		err = errors.New("-server measures keepalive and close modes only")
	} else if bin, err = filepath.Abs(server); err == nil {
		dir, cleanup, err = benchutil.TempDir()
	}
	if err != nil {
		return err
	}
	defer cleanup()
	addr, err := benchutil.FreeAddr()
	if err != nil {
		return err
	}
	pidFile := filepath.Join(dir, "server.pid")
	args := []string{"-api", addr, "-pidfile", pidFile, "-hammer", "30s"}
	scheme := "http"
	if mode == "h2" {
		tlsAddr, err := benchutil.FreeAddr()
		if err != nil {
			return err
		}
		ca, err := testcert.NewCA("bench CA")
		if err != nil {
			return err
		}
		leaf, err := ca.Valid("127.0.0.1", "127.0.0.1", "localhost")
		if err != nil {
			return err
		}
		cert, key, err := leaf.Write(dir)
		if err != nil {
			return err
		}
		args = append(args, "-tls", tlsAddr, "-cert", cert, "-key", key)
		addr, scheme = tlsAddr, "https"
	}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	srv := exec.Command(bin, args...)
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		return err
	}
	pids := &pidSet{bin: bin, known: map[int]bool{srv.Process.Pid: true}}
	defer pids.killAll()
	// Every server process, this one too, is reaped by pids.reap, which
	// adds up their CPU time.
	base := scheme + "://" + addr
	if err := waitUp(base, 10*time.Second); err != nil {
		return err
	}

	var loader *exec.Cmd
	var out bytes.Buffer
	secs := strconv.Itoa(int(duration.Seconds()))
	switch mode {
	case "keepalive":
		loader = exec.Command("wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", secs+"s", base+"/")
	case "close":
		loader = exec.Command("wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", secs+"s",
			"-H", "Connection: close", base+"/")
	case "idle":
		// No load: what the restarts themselves cost (server_cpu per
		// restart).
		loader = exec.Command("sleep", secs)
	case "h2":
		loader = exec.Command("h2load", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-m", "10",
			"-D", secs, base+"/")
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	loader.Stdout, loader.Stderr = &out, &out
	if err := loader.Start(); err != nil {
		return fmt.Errorf("%s: %w (install Debian's wrk and nghttp2-client)", loader.Path, err)
	}
	loaded := make(chan error, 1)
	go func() { loaded <- loader.Wait() }()

	var slowOK, slowCut atomic.Int64
	var slowWG sync.WaitGroup
	var took []time.Duration
	restarts, failedRestarts := 0, 0
	tick := time.NewTicker(interval)
	defer tick.Stop()
	deadline := time.Now().Add(duration - interval)
loop:
	for time.Now().Before(deadline) {
		select {
		case err := <-loaded:
			loaded <- err
			break loop
		case <-tick.C:
		}
		for range slowN {
			slowWG.Add(1)
			go func() {
				defer slowWG.Done()
				if err := get(base+"/slow?ms=2000", "slow "); err != nil {
					slowCut.Add(1)
					fmt.Fprintln(os.Stderr, "slow request:", err)
				} else {
					slowOK.Add(1)
				}
			}()
		}
		time.Sleep(50 * time.Millisecond) // let the slow requests reach the server
		old, err := readPID(pidFile)
		if err != nil {
			return err
		}
		start := time.Now()
		syscall.Kill(old, sig)
		restarts++
		pid, err := waitNewPID(base, old, 10*time.Second)
		if err != nil {
			failedRestarts++
			fmt.Fprintln(os.Stderr, "restart:", err)
			continue
		}
		took = append(took, time.Since(start))
		pids.add(pid)
		pids.reap()
	}
	if err := <-loaded; err != nil {
		return fmt.Errorf("load generator: %v\n%s", err, out.String())
	}
	slowWG.Wait()
	// The last old process finishes its slow requests, then exits.
	time.Sleep(2500 * time.Millisecond)
	pids.reap()
	live := pids.live()
	serverCPU := pids.cpuOf(live)
	loaderCPU := cpuTime(loader.ProcessState.SysUsage().(*syscall.Rusage))

	if os.Getenv("BENCH_RAW") != "" {
		fmt.Println(out.String())
	}
	parse := benchutil.ParseWrk
	if mode == "h2" {
		parse = benchutil.ParseH2load
	}
	res := parse(out.String())
	slices.Sort(took)
	var median, maxTook time.Duration
	if len(took) > 0 {
		median, maxTook = took[len(took)/2], took[len(took)-1]
	}
	fmt.Printf("server=%s mode=%s duration=%v conns=%d restarts=%d failed_restarts=%d\n",
		filepath.Base(bin), mode, duration, conns, restarts, failedRestarts)
	fmt.Printf("requests=%d rps=%.0f socket_errors: connect=%d read=%d write=%d timeout=%d non2xx=%d failed=%d\n",
		res.Requests, res.RPS, res.Connect, res.Read, res.Write, res.Timeout, res.Non2xx, res.Failed)
	fmt.Printf("slow_requests=%d slow_cut=%d sighup_to_new_process: median=%v max=%v probes=%d processes_left=%d\n",
		slowOK.Load()+slowCut.Load(), slowCut.Load(), median.Round(time.Millisecond), maxTook.Round(time.Millisecond), probes.Load(), len(live))
	if res.Requests > 0 {
		fmt.Printf("server_cpu=%v client_cpu=%v server_cpu_per_request=%.2fus\n", serverCPU.Round(time.Millisecond),
			loaderCPU.Round(time.Millisecond), float64(serverCPU.Microseconds())/float64(res.Requests))
	}
	errorsSeen := res.Errors() + slowCut.Load()
	if mode == "h2" {
		// h2load counts as failed the requests it declines to submit once a
		// GOAWAY has arrived (process_request_failure): they never reach the
		// server, whatever the server does. TestHTTP2AcrossRestarts checks
		// the streams a client does send; here they are reported only.
		fmt.Printf("note: h2load's failed=%d are requests it did not send after a GOAWAY\n", res.Failed)
		errorsSeen -= res.Failed
	}
	if mode == "idle" && restarts > 0 {
		fmt.Printf("server_cpu=%v server_cpu_per_restart=%v\n", serverCPU.Round(time.Millisecond),
			(serverCPU / time.Duration(restarts)).Round(100*time.Microsecond))
	}
	if errorsSeen != 0 || failedRestarts != 0 || len(live) != 1 || res.Requests == 0 && mode != "idle" {
		return errors.New("clients saw errors, a restart failed, or not exactly one process is left")
	}
	return nil
}

// client makes a new connection for every request.
var client = benchClient(false)

// benchClient is a client of the bench's server (whose CA is the bench's
// own), with or without keep-alive (one idle connection).
func benchClient(keepAlive bool) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives:   !keepAlive,
			MaxIdleConnsPerHost: 1,
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: true},
		},
	}
}

func get(url, prefix string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), prefix) {
		return fmt.Errorf("%s %q", resp.Status, body)
	}
	return nil
}

func waitUp(base string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if get(base+"/", "ok") == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.New("server did not come up")
}

// probe asks the server which process answers, over one keep-alive
// connection: a new connection per question (every millisecond of a
// restart) would load the server in proportion to how long its restart
// takes, with requests the load generator does not count.
var probe = benchClient(true)

// probes counts the questions waitNewPID asked.
var probes atomic.Int64

// waitNewPID polls /pid until another process than old answers. The old
// process closes the probe's connection as it drains, and the next one
// reaches the new process.
func waitNewPID(base string, old int, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		probes.Add(1)
		resp, err := probe.Get(base + "/pid")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if pid, _ := strconv.Atoi(string(b)); pid != 0 && pid != old {
				return pid, nil
			}
		}
		time.Sleep(time.Millisecond)
	}
	return 0, fmt.Errorf("no new process answered within %v", timeout)
}

func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// pidSet remembers every server process, reaps the exited ones (this
// process is their subreaper) and kills the rest at the end. It adds up
// the CPU time the exited ones used.
type pidSet struct {
	bin   string
	mu    sync.Mutex
	known map[int]bool
	cpu   time.Duration
}

func cpuTime(ru *syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuOf is the CPU time of every server process so far: the reaped ones
// and the live ones, as /proc tells it.
func (p *pidSet) cpuOf(live []int) time.Duration {
	p.mu.Lock()
	total := p.cpu
	p.mu.Unlock()
	for _, pid := range live {
		if pr, ok := procfs.Of(pid); ok {
			total += pr.CPU
		}
	}
	return total
}

func (p *pidSet) add(pid int) { p.mu.Lock(); p.known[pid] = true; p.mu.Unlock() }

// reap reaps the exited server processes and adds up their CPU time. It
// waits for those alone: wait4(-1) would also take the exit of the load
// generator, whose exec.Cmd then fails, and count its CPU as the server's.
func (p *pidSet) reap() {
	me, comm := os.Getpid(), filepath.Base(p.bin)
	comm = comm[:min(len(comm), 15)] // what the kernel keeps of a command's name
	for _, pr := range procfs.All() {
		if pr.State != "Z" || pr.PPID != me || pr.Comm != comm {
			continue
		}
		var ws syscall.WaitStatus
		var ru syscall.Rusage
		if pid, err := syscall.Wait4(pr.PID, &ws, syscall.WNOHANG, &ru); pid == pr.PID && err == nil {
			p.mu.Lock()
			p.cpu += cpuTime(&ru)
			p.mu.Unlock()
		}
	}
}

// live returns the server processes alive.
func (p *pidSet) live() []int {
	var out []int
	for _, pr := range procfs.All() {
		if pr.Exe == p.bin && pr.State != "Z" {
			out = append(out, pr.PID)
		}
	}
	return out
}

func (p *pidSet) killAll() {
	p.mu.Lock()
	for pid := range p.known {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	p.mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	p.reap()
}
