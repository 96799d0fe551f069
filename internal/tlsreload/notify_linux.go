package tlsreload

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// notifier wakes Watch when something changes in a directory that holds
// one of files or, for a symlink, its target: a file written, renamed
// over, a symlink swapped (Kubernetes' ..data). The events themselves are
// not read for what they say; Watch looks at the files. It returns a nil
// channel when inotify is not available (Watch then only polls), and a
// func that stops it.
func notifier(files []string) (<-chan struct{}, func()) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, func() {}
	}
	const mask = unix.IN_CLOSE_WRITE | unix.IN_MODIFY | unix.IN_MOVED_TO | unix.IN_MOVED_FROM |
		unix.IN_CREATE | unix.IN_DELETE | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	watched := 0
	for _, dir := range dirsOf(files) {
		if _, err := unix.InotifyAddWatch(fd, dir, mask); err == nil {
			watched++
		}
	}
	if watched == 0 {
		unix.Close(fd)
		return nil, func() {}
	}
	// Non-blocking, so reads wait in the runtime's poller and Close ends
	// one in progress.
	f := os.NewFile(uintptr(fd), "inotify")
	wake := make(chan struct{}, 1)
	wake <- struct{}{} // one look at the start: a change may have come before the watches
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			select {
			case wake <- struct{}{}:
			default: // a wake-up is pending already
			}
		}
	}()
	return wake, func() { f.Close(); <-done }
}

// dirsOf is every directory whose entries changing may change what one of
// files reads: the file's own, and its symlink target's.
func dirsOf(files []string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(d string) {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	for _, f := range files {
		add(filepath.Dir(f))
		if real, err := filepath.EvalSymlinks(f); err == nil {
			add(filepath.Dir(real))
		}
	}
	return out
}
