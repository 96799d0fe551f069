//go:build unix

package server

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// readyPipe adopts fd as the write end of the readiness pipe.
func readyPipe(fd uintptr) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(fd), &st); err != nil {
		return nil, err
	}
	if uint32(st.Mode)&unix.S_IFMT != unix.S_IFIFO {
		return nil, fmt.Errorf("not a pipe (mode %#o)", st.Mode)
	}
	unix.CloseOnExec(int(fd))
	return os.NewFile(fd, "ready"), nil
}
