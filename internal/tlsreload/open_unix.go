//go:build unix

package tlsreload

import "syscall"

// syscallNonblock opens a FIFO without waiting for a writer.
const syscallNonblock = syscall.O_NONBLOCK
