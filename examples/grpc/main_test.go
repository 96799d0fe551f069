//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

var bin string

func TestMain(m *testing.M) {
	// The processes of each restart are orphaned to this test, which reaps
	// them.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "grpc-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "grpc")
	if out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func readPID(path string) int {
	b, _ := os.ReadFile(path)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// reap waits for pid, a child or an orphan of this test, to exit.
func reap(t *testing.T, pid int) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if !errors.Is(err, unix.EINTR) {
				done <- err
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("pid %d did not exit", pid)
	}
}

// count runs Count and returns the pids of its replies.
func count(ctx context.Context, cc *grpc.ClientConn, n, delayMS int, first chan<- struct{}) ([]int, error) {
	stream, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, CountMethod, grpc.CallContentSubtype("json"))
	if err != nil {
		return nil, err
	}
	if err := stream.SendMsg(&CountRequest{N: n, DelayMS: delayMS}); err != nil {
		return nil, err
	}
	if err := stream.CloseSend(); err != nil {
		return nil, err
	}
	var pids []int
	for {
		var r CountReply
		err := stream.RecvMsg(&r)
		if errors.Is(err, io.EOF) {
			return pids, nil
		}
		if err != nil {
			return pids, err
		}
		if r.I != len(pids) {
			return pids, fmt.Errorf("reply %d came as number %d", r.I, len(pids))
		}
		pids = append(pids, r.PID)
		if first != nil && len(pids) == 1 {
			close(first)
		}
	}
}

// Unary and streaming clients through 20 restarts see no error, and a
// stream in flight at each restart finishes in the process it started in.
func TestGRPCAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	pidFile := filepath.Join(dir, "pid")
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "-addr", addr, "-pidfile", pidFile)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	known := map[int]bool{cmd.Process.Pid: true}
	defer func() {
		for pid := range known {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("server log:\n%s", b)
		}
	}()
	waitFor(t, "the server", func() bool { return readPID(pidFile) == cmd.Process.Pid })

	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var unary, streams, failed atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := hc.Check(rctx, &healthpb.HealthCheckRequest{})
				cancel()
				if err != nil && ctx.Err() == nil {
					failed.Add(1)
					t.Errorf("Check: %v", err)
					return
				}
				unary.Add(1)
			}
		}()
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				pids, err := count(context.Background(), cc, 5, 10, nil)
				if err != nil || len(pids) != 5 {
					failed.Add(1)
					t.Errorf("Count: %d replies, %v", len(pids), err)
					return
				}
				streams.Add(1)
			}
		}()
	}

	for i := range 20 {
		old := readPID(pidFile)
		first := make(chan struct{})
		long := make(chan error, 1)
		go func() {
			pids, err := count(context.Background(), cc, 10, 50, first)
			if err == nil && (len(pids) != 10 || pids[0] != old || pids[9] != old) {
				err = fmt.Errorf("replies %v, want 10 from the old process %d", pids, old)
			}
			long <- err
		}()
		<-first // in flight in the old process
		syscall.Kill(old, syscall.SIGHUP)
		waitFor(t, "the new process", func() bool { n := readPID(pidFile); return n != 0 && n != old })
		known[readPID(pidFile)] = true
		if err := <-long; err != nil {
			t.Fatalf("restart %d: the stream in flight: %v", i+1, err)
		}
		if old != cmd.Process.Pid {
			reap(t, old)
		}
	}
	stop()
	wg.Wait()
	t.Logf("through 20 restarts: %d unary calls, %d streams, %d failed", unary.Load(), streams.Load(), failed.Load())
	if failed.Load() != 0 || unary.Load() == 0 || streams.Load() == 0 {
		t.Fatal("clients saw errors")
	}
	last := readPID(pidFile)
	syscall.Kill(last, syscall.SIGTERM)
	if last != cmd.Process.Pid {
		reap(t, last)
	}
}
