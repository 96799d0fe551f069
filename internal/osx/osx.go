// Package osx is the seam between the restart logic and the operating
// system: the environment, process identity, and starting a child. The
// server uses Real; its tests substitute functions to drive the parent and
// child sides of a restart without forking.
package osx

import (
	"errors"
	"os"
)

// Process is a started child.
type Process interface {
	Pid() int
	// Signal sends sig to the process.
	Signal(sig os.Signal) error
	// Kill ends the process at once (SIGKILL on Unix).
	Kill() error
	// Wait reaps the process and returns a non-nil error unless it exited
	// with status 0.
	Wait() error
}

// StartFunc starts exe with argv (argv[0] included), env, dir, and the
// given files as its descriptors 0, 1, 2, 3, …
type StartFunc func(exe string, argv, env []string, dir string, files []*os.File) (Process, error)

// OS is the set of operating-system calls the restart logic makes.
type OS struct {
	LookupEnv  func(key string) (string, bool)
	Unsetenv   func(key string) error
	Environ    func() []string
	Getpid     func() int
	Getppid    func() int
	Executable func() (string, error)
	Getwd      func() (string, error)
	Start      StartFunc
}

// Real returns the calls of the running process.
func Real() *OS {
	return &OS{
		LookupEnv:  os.LookupEnv,
		Unsetenv:   os.Unsetenv,
		Environ:    os.Environ,
		Getpid:     os.Getpid,
		Getppid:    os.Getppid,
		Executable: os.Executable,
		Getwd:      os.Getwd,
		Start:      start,
	}
}

type process struct{ p *os.Process }

func (p process) Pid() int    { return p.p.Pid }
func (p process) Kill() error { return p.p.Kill() }

func (p process) Signal(sig os.Signal) error { return p.p.Signal(sig) }

func (p process) Wait() error {
	st, err := p.p.Wait()
	if err != nil {
		return err
	}
	if !st.Success() {
		return errors.New(st.String()) // "exit status 3", "signal: killed"
	}
	return nil
}

// start runs os.StartProcess. Every descriptor the runtime opened is
// close-on-exec, so the child receives exactly files. The listener
// descriptors stay in non-blocking mode: os.File.Fd only switches a file
// to blocking mode if the runtime itself made it non-blocking, which is not
// the case for a socket duplicated with its flags.
func start(exe string, argv, env []string, dir string, files []*os.File) (Process, error) {
	p, err := os.StartProcess(exe, argv, &os.ProcAttr{Dir: dir, Env: env, Files: files})
	if err != nil {
		return nil, err
	}
	return process{p}, nil
}
