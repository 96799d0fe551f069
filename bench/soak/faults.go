//go:build linux

package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/handoff-go/handoff/internal/testcert"
)

// fault is something that goes wrong around a restart.
type fault struct {
	name string
	run  func(r *run) error
}

var faults = []fault{
	{"crash-at-start", func(r *run) error { return r.failedRestart("crash", nil) }},
	{"hang-past-ready-timeout", func(r *run) error { return r.failedRestart("hang", nil) }},
	{"kill-child-in-handshake", func(r *run) error {
		return r.failedRestart("slow", func(parent int) error {
			var kids []int
			if err := r.await("the child", 10*time.Second, func() bool { kids = children(parent); return len(kids) > 0 }); err != nil {
				return err
			}
			return syscall.Kill(kids[0], syscall.SIGKILL)
		})
	}},
	{"kill-draining", func(r *run) error {
		// Its open connections are cut: the errors of its clients are
		// the fault's, and there may be as many as the connections it
		// held, no more.
		old := r.current()
		if _, err := r.restart(); err != nil {
			return err
		}
		r.heldByKilled += r.connections(old)
		start := time.Now()
		err := syscall.Kill(old, syscall.SIGKILL)
		r.tl.explain("kill-draining", start, 0, true)
		if errors.Is(err, syscall.ESRCH) {
			return nil // it was done draining already
		}
		return err
	}},
	{"sigterm-during-restart", func(r *run) error {
		// The service is asked to stop while it restarts: it stops (the
		// child too), and comes back as a supervisor would start it. Its
		// clients' errors until it serves again are the fault's.
		start := time.Now()
		old := r.current()
		syscall.Kill(old, syscall.SIGHUP)
		time.Sleep(20 * time.Millisecond)
		syscall.Kill(old, syscall.SIGTERM)
		if err := r.await("every process to stop", 30*time.Second, func() bool { return len(r.live()) == 0 }); err != nil {
			return err
		}
		if err := r.launch(); err != nil {
			return err
		}
		r.tl.explain("sigterm-during-restart", start, 0, true)
		return nil
	}},
	{"sigusr1-during-restart", func(r *run) error {
		old := r.current()
		syscall.Kill(old, syscall.SIGHUP)
		syscall.Kill(old, syscall.SIGUSR1)
		return r.awaitNew(old)
	}},
	{"sighup-storm", func(r *run) error {
		old := r.current()
		for range 5 {
			syscall.Kill(old, syscall.SIGHUP)
			time.Sleep(5 * time.Millisecond)
		}
		return r.awaitNew(old)
	}},
	{"garbage-certificate", func(r *run) error {
		good, err := os.ReadFile(r.certFile)
		if err != nil {
			return err
		}
		if err := testcert.WriteAtomic(r.certFile, []byte("garbage")); err != nil {
			return err
		}
		syscall.Kill(r.current(), syscall.SIGUSR1)
		time.Sleep(200 * time.Millisecond)
		// The old certificate serves on.
		c, err := tls.Dial("tcp", r.tls, r.tlsConfig())
		if err != nil {
			return fmt.Errorf("handshake with a garbage file on disk: %w", err)
		}
		c.Close()
		if err := testcert.WriteAtomic(r.certFile, good); err != nil {
			return err
		}
		syscall.Kill(r.current(), syscall.SIGUSR1)
		_, err = r.restart()
		return err
	}},
	{"slowloris", func(r *run) error {
		// A client that sends its request a byte at a time: the read
		// header timeout ends it, the restart does not wait on it.
		go func() {
			c, err := net.Dial("tcp", r.api)
			if err != nil {
				return
			}
			defer c.Close()
			for _, b := range []byte("GET / HTTP/1.1\r\nHost: x\r\n") {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(500 * time.Millisecond)
			}
		}()
		_, err := r.restart()
		return err
	}},
	{"websocket-ignores-going-away", func(r *run) error {
		// A websocket client that never reads: hammer time closes it.
		d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
		c, _, err := d.Dial("ws://"+r.api+"/ws", nil)
		if err != nil {
			return err
		}
		go func() {
			time.Sleep(10 * time.Second)
			c.Close()
		}()
		_, err = r.restart()
		return err
	}},
}

// failedRestart makes the next process misbehave (mode), sends SIGHUP,
// optionally does more to the starting child, and checks that the restart
// failed and the same process serves on.
func (r *run) failedRestart(mode string, then func(parent int) error) error {
	before := r.restartsFailedNow()
	if before < 0 {
		return fmt.Errorf("cannot read the server's stats")
	}
	if err := os.WriteFile(r.modeFile, []byte(mode), 0o644); err != nil {
		return err
	}
	defer os.WriteFile(r.modeFile, nil, 0o644)
	pid := r.current()
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return err
	}
	if then != nil {
		if err := then(pid); err != nil {
			return err
		}
	}
	if err := r.await("the restart to fail", 30*time.Second, func() bool { return r.restartsFailedNow() > before }); err != nil {
		return err
	}
	if now := r.current(); now != pid {
		return fmt.Errorf("pid %d serves after a failed restart, want %d", now, pid)
	}
	r.restartsFailed++
	return nil
}

// awaitNew waits until a process other than old serves.
func (r *run) awaitNew(old int) error {
	err := r.await("the new process", 30*time.Second, func() bool { now := r.current(); return now != 0 && now != old })
	if err == nil {
		r.restartsOK++
		r.tl.mark("restart", "")
	}
	return err
}
