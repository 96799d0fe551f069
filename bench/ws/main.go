// Command ws measures what idle websocket connections cost a handoff
// server and how long draining them takes.
//
// It builds the test server, opens -conns websocket connections to it,
// reports the server's resident memory per connection, then sends SIGTERM
// and reports the time until every client got close 1001 and until the
// process exited.
//
//	go run ./bench/ws -conns 10000
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/handoff-go/handoff/bench/internal/benchutil"
)

func main() {
	n := flag.Int("conns", 10000, "websocket connections")
	flag.Parse()
	if err := run(*n); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(n int) error {
	bin, _, cleanup, err := benchutil.BuildServer()
	if err != nil {
		return err
	}
	defer cleanup()
	addr, err := benchutil.FreeAddr()
	if err != nil {
		return err
	}
	srv := exec.Command(bin, "-api", addr, "-hammer", "120s")
	if err := srv.Start(); err != nil {
		return err
	}
	defer srv.Process.Kill()
	exited := make(chan time.Time, 1)
	go func() { srv.Wait(); exited <- time.Now() }()

	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	var first *websocket.Conn
	for start := time.Now(); first == nil; {
		if first, _, err = d.Dial("ws://"+addr+"/ws", nil); err != nil {
			if time.Since(start) > 10*time.Second {
				return err
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	first.ReadMessage() // greeting
	time.Sleep(500 * time.Millisecond)
	before, err := rss(srv.Process.Pid)
	if err != nil {
		return err
	}

	conns := make([]*websocket.Conn, n)
	var dialErr atomic.Value
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	start := time.Now()
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, _, err := d.Dial("ws://"+addr+"/ws", nil)
			if err != nil {
				dialErr.Store(err)
				return
			}
			if _, _, err := c.ReadMessage(); err != nil {
				dialErr.Store(err)
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	if err, _ := dialErr.Load().(error); err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	dialTook := time.Since(start)
	time.Sleep(2 * time.Second) // let the server settle
	after, err := rss(srv.Process.Pid)
	if err != nil {
		return err
	}

	// Every client waits for the server's close and answers it.
	var got1001, other atomic.Int64
	var closed sync.WaitGroup
	for _, c := range append(conns, first) {
		closed.Add(1)
		go func() {
			defer closed.Done()
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					var ce *websocket.CloseError
					if errors.As(err, &ce) && ce.Code == websocket.CloseGoingAway {
						got1001.Add(1)
					} else {
						other.Add(1)
					}
					c.Close()
					return
				}
			}
		}()
	}
	drainStart := time.Now()
	srv.Process.Signal(syscall.SIGTERM)
	closed.Wait()
	allClosed := time.Since(drainStart)
	var exitTook time.Duration
	select {
	case at := <-exited:
		exitTook = at.Sub(drainStart)
	case <-time.After(2 * time.Minute):
		return errors.New("server did not exit")
	}
	per := float64(after-before) / float64(n)
	fmt.Printf("conns=%d dial_time=%v rss_before=%.1fMiB rss_after=%.1fMiB rss_per_conn=%.1fKiB\n",
		n, dialTook.Round(time.Millisecond), mib(before), mib(after), per/1024)
	fmt.Printf("drain: close_1001=%d other_close=%d all_clients_closed=%v process_exited=%v\n",
		got1001.Load(), other.Load(), allClosed.Round(time.Millisecond), exitTook.Round(time.Millisecond))
	if other.Load() != 0 || got1001.Load() != int64(n+1) {
		return errors.New("not every client got close 1001")
	}
	return nil
}

func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
