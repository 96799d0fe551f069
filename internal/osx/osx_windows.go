//go:build windows

package osx

import (
	"errors"
	"os"
)

// process is a child on Windows, where the server never starts one (a
// restart is not supported); it is here so that the package builds.
type process struct{ p *os.Process }

func (p process) Pid() int                   { return p.p.Pid }
func (p process) Signal(sig os.Signal) error { return p.p.Signal(sig) }
func (p process) Kill() error                { return p.p.Kill() }
func (p process) Poll() (bool, error)        { return false, nil }

func (p process) Wait() error {
	st, err := p.p.Wait()
	if err != nil {
		return err
	}
	if !st.Success() {
		return errors.New(st.String())
	}
	return nil
}

func start(exe string, argv, env []string, dir string, files []*os.File) (Process, error) {
	p, err := os.StartProcess(exe, argv, &os.ProcAttr{Dir: dir, Env: env, Files: files})
	if err != nil {
		return nil, err
	}
	return process{p}, nil
}

func alive(pid int) bool {
	_, err := os.FindProcess(pid)
	return err == nil
}

func reapAny() (int, error, bool) { return 0, nil, false }
