//go:build linux

// Package procfs reads what Linux's /proc tells of processes, for the
// tests and benchmarks that look after the processes they start.
package procfs

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Proc is a process, as /proc tells of it.
type Proc struct {
	PID, PPID int
	Comm      string        // the command name; a zombie has no Exe left, but has this
	State     string        // "R", "S", "T" stopped, "Z" zombie, ...
	Exe       string        // the executable, without " (deleted)"
	CPU       time.Duration // user and system time used so far
}

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every
// Linux there is.
const clockTicks = 100

// All lists the processes of the machine.
func All() []Proc {
	var out []Proc
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := Of(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

// Of reads what /proc tells of pid; ok is false if it is not there.
func Of(pid int) (p Proc, ok bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return p, false
	}
	f := strings.Fields(string(stat[end+1:]))
	if len(f) < 2 {
		return p, false
	}
	p = Proc{PID: pid, Comm: string(stat[open+1 : end]), State: f[0]}
	p.PPID, _ = strconv.Atoi(f[1])
	if len(f) > 12 { // utime and stime: fields 14 and 15 of the line
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		p.CPU = time.Duration(ut+st) * (time.Second / clockTicks)
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	p.Exe = strings.TrimSuffix(exe, " (deleted)")
	return p, true
}

// FDs is the number of descriptors pid has open.
func FDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}
