//go:build unix

package osx

import (
	"errors"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// process is a child started by os.StartProcess and reaped by wait4 on
// its pid, so that it can be polled without blocking.
type process struct {
	p   *os.Process
	pid int // p.Pid is -1 once released

	mu     sync.Mutex
	done   bool
	status error
}

func (p *process) Pid() int { return p.pid }

func (p *process) Signal(sig os.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return nil // its pid may belong to another process by now
	}
	return p.p.Signal(sig)
}

func (p *process) Kill() error { return p.Signal(os.Kill) }

func (p *process) Poll() (bool, error) { return p.wait(unix.WNOHANG) }

func (p *process) Wait() error {
	_, status := p.wait(0)
	return status
}

func (p *process) wait(options int) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return true, p.status
	}
	var ws unix.WaitStatus
	for {
		pid, err := unix.Wait4(p.pid, &ws, options, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			// ECHILD: someone else reaped it; its status is lost.
			p.done, p.status = true, err
			p.p.Release()
			return true, err
		}
		if pid == 0 {
			return false, nil
		}
		p.done, p.status = true, Status(ws)
		p.p.Release()
		return true, p.status
	}
}

// Status turns a wait status into nil for exit status 0, else an error
// that says how the process ended.
func Status(ws unix.WaitStatus) error {
	switch {
	case ws.Exited() && ws.ExitStatus() == 0:
		return nil
	case ws.Signaled():
		return errors.New("signal: " + ws.Signal().String())
	}
	return errors.New("exit status " + strconv.Itoa(ws.ExitStatus()))
}

// start runs os.StartProcess. Every descriptor the runtime opened is
// close-on-exec, so the child receives exactly files.
func start(exe string, argv, env []string, dir string, files []*os.File) (Process, error) {
	p, err := os.StartProcess(exe, argv, &os.ProcAttr{Dir: dir, Env: env, Files: files})
	if err != nil {
		return nil, err
	}
	return &process{p: p, pid: p.Pid}, nil
}

func alive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

func reapAny() (int, error, bool) {
	var ws unix.WaitStatus
	for {
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return 0, nil, false
		}
		return pid, Status(ws), true
	}
}
