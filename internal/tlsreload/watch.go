package tlsreload

import (
	"context"
	"os"
	"slices"
	"time"
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
// done. It looks every interval; a change is acted on once the files have
// stayed the same for one more interval, so that a certificate and its key
// written one after the other are read together. A reload that fails (a
// certificate whose new key is not written yet) keeps the set in use and
// is tried again at the next change. report is called with each reload's
// outcome. Polling, rather than inotify, sees renames over the files and
// symlink swaps alike, on every platform, for the cost of a few stat calls
// a second.
func (r *Reloader) Watch(ctx context.Context, interval time.Duration, report func([]Info, error)) {
	files := r.files()
	var seen, failed []fileID
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := state(files)
		if !slices.Equal(now, seen) {
			seen = now // changed: wait until it holds still
			continue
		}
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
