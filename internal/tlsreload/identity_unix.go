//go:build unix

package tlsreload

import (
	"os"
	"syscall"
)

type inodeID struct{ dev, ino uint64 }

func identity(fi os.FileInfo) any {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return inodeID{uint64(st.Dev), uint64(st.Ino)}
	}
	return nil
}
