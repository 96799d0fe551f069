package tlsreload

import (
	"context"
	"os"
	"slices"
	"time"

	"github.com/handoff-go/handoff/internal/ticks"
)

// fileID tells one version of a file from another: what a path leads to
// (symlinks followed, so a Kubernetes ..data swap shows), its size and its
// modification time.
type fileID struct {
	exists bool
	inode  any // os.FileInfo.Sys's identity, platform-specific
	size   int64
	mtime  int64 // unix nanoseconds
}

func (r *Reloader) files() []string {
	var out []string
	for _, p := range r.pairs {
		out = append(out, p.CertFile, p.KeyFile)
	}
	if r.clientCA != "" {
		out = append(out, r.clientCA)
	}
	return out
}

func state(files []string) []fileID {
	out := make([]fileID, len(files))
	for i, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			continue
		}
		out[i] = fileID{exists: true, inode: identity(fi), size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	}
	return out
}

// Watch reloads the certificates when their files change, until ctx is
// done. On Linux, inotify on the files' directories wakes it at once; it
// also looks every interval, which is all it does elsewhere and what
// catches changes inotify does not see (network filesystems, a directory
// that did not exist at the start). A change is acted on once the files
// hold still: for settle after the last event, or for one more interval
// when polling, so that a certificate and its key written one after the
// other are read together. A reload that fails (a certificate whose new
// key is not written yet) keeps the set in use and is tried again at the
// next change. report is called with each reload's outcome.
func (r *Reloader) Watch(ctx context.Context, interval time.Duration, report func([]Info, error)) {
	files := r.files()
	wake, stop := newNotifier(files)
	defer stop()
	var seen, failed []fileID
	t := ticks.NewTicker(interval)
	defer t.Stop()
	for {
		settled := false // held still since the last event
		select {
		case <-ctx.Done():
			return
		case <-wake:
			if !quiet(ctx, wake) {
				return
			}
			settled = true
		case <-t.C:
		}
		now := state(files)
		if !settled && !slices.Equal(now, seen) {
			seen = now // changed: wait until it holds still
			continue
		}
		seen = now
		r.mu.Lock()
		current := slices.Equal(now, r.loaded) // a SIGUSR1 reload counts too
		r.mu.Unlock()
		if current || slices.Equal(now, failed) {
			continue
		}
		infos, err := r.Reload()
		if err != nil {
			failed = now // tried again at the next change, not at every look
		}
		report(infos, err)
	}
}

// newNotifier is notifier; tests replace it to watch by polling alone.
var newNotifier = notifier

const (
	// settle is how long the files' directories must be quiet after an
	// event before the files are read.
	settle = 100 * time.Millisecond
	// settleAtMost bounds that wait in a directory that is never quiet.
	settleAtMost = 2 * time.Second
)

// quiet waits until wake has stayed silent for settle (or settleAtMost has
// passed), and reports false if ctx ended first.
func quiet(ctx context.Context, wake <-chan struct{}) bool {
	bound := time.NewTimer(settleAtMost)
	defer bound.Stop()
	calm := time.NewTimer(settle)
	defer calm.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-bound.C:
			return true
		case <-calm.C:
			return true
		case <-wake:
			calm.Reset(settle)
		}
	}
}

// Expiry thresholds at which a served certificate is reported.
var expiryWarnings = []time.Duration{30 * 24 * time.Hour, 7 * 24 * time.Hour}

// Expiring returns the lowest warning threshold (30 or 7 days) that a
// certificate expiring at notAfter is within at now, or 0.
func Expiring(notAfter, now time.Time) time.Duration {
	var out time.Duration
	for _, w := range expiryWarnings {
		if notAfter.Sub(now) < w {
			out = w
		}
	}
	return out
}
