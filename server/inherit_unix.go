//go:build unix

package server

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/protocol"
)

// A parent passes listening sockets and the readiness pipe without
// close-on-exec, as it must; the child marks them close-on-exec before any
// code of the program runs, so that a process the program starts before
// Serve (or at any time) never holds a socket or the pipe: such a process
// would keep the ports after the service stopped, and keep the pipe open
// after a failed child died.
func init() { protectInherited() }

func protectInherited() {
	if v, ok := os.LookupEnv(protocol.EnvOrder); ok && parentOwnsVariables() {
		if m, err := protocol.Parse(v); err == nil {
			last := int(m.ReadyFD()) + len(inheritedFileNames())
			for fd := protocol.FirstFD; fd <= last; fd++ {
				unix.CloseOnExec(fd)
			}
		}
	}
	pid, _ := os.LookupEnv(protocol.EnvListenPID)
	fds, _ := os.LookupEnv(protocol.EnvListenFDs)
	if a, ok, err := protocol.ParseActivation(os.Getpid(), pid, fds, ""); ok && err == nil {
		for i := range a.Len() {
			unix.CloseOnExec(protocol.FirstFD + i)
		}
	}
}

// loadInheritedFiles takes the files the parent passed with PassFile:
// the descriptors after the readiness pipe named in HANDOFF_FILES.
func loadInheritedFiles() map[string]*os.File {
	out := map[string]*os.File{}
	v, ok := os.LookupEnv(protocol.EnvOrder)
	if !ok || !parentOwnsVariables() {
		return out
	}
	m, err := protocol.Parse(v)
	if err != nil {
		return out
	}
	for i, name := range inheritedFileNames() {
		fd := int(m.ReadyFD()) + 1 + i
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil {
			continue // not there: the parent's problem, the program opens its own
		}
		out[name] = os.NewFile(uintptr(fd), name)
	}
	return out
}

// parentOwnsVariables reports whether the handoff variables come from this
// process's parent, or from a parent that has died since (adopt decides
// the same way).
func parentOwnsVariables() bool {
	ppid, err := strconv.Atoi(os.Getenv(protocol.EnvParentPID))
	if err != nil || ppid <= 1 {
		return false
	}
	if ppid == os.Getppid() {
		return true
	}
	return unix.Kill(ppid, 0) == unix.ESRCH
}
