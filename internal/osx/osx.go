// Package osx is the seam between the restart logic and the operating
// system: the environment, process identity, starting, signalling and
// reaping processes. The server uses Real; its tests substitute functions
// to drive the parent, child and master sides of a restart without forking.
package osx

import (
	"os"
)

// Process is a started child.
type Process interface {
	Pid() int
	// Signal sends sig to the process; once it has been reaped, nothing.
	Signal(sig os.Signal) error
	// Kill ends the process at once (SIGKILL on Unix); once it has been
	// reaped, nothing.
	Kill() error
	// Poll reports, without blocking, whether the process has exited,
	// reaping it if so, and its status: nil for exit status 0, else an
	// error such as "exit status 3" or "signal: killed".
	Poll() (exited bool, status error)
	// Wait reaps the process and returns its status, as Poll does.
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
	// Alive reports whether a process with this pid exists.
	Alive func(pid int) bool
	// Signal sends sig to the process pid (a worker to its master).
	Signal func(pid int, sig os.Signal) error
	// ReapAny reaps one exited child, whichever it is, without blocking;
	// ok is false when none has exited. Only an init (PID 1) calls it.
	ReapAny func() (pid int, status error, ok bool)
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
		Alive:      alive,
		Signal:     signal,
		ReapAny:    reapAny,
	}
}

func signal(pid int, sig os.Signal) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Signal(sig)
}
