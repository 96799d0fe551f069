package ticks

import (
	"os"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/procfs"
)

// On Linux the ticks come from a timerfd, which Close closes.
func TestTimerfd(t *testing.T) {
	before := openFDs(t)
	tk := New(time.Hour)
	if _, ok := tk.(fdTicks); !ok {
		t.Fatalf("New gave %T, want timerfd ticks", tk)
	}
	if n := openFDs(t); n != before+1 {
		t.Fatalf("%d descriptors open with the ticks, want %d", n, before+1)
	}
	tk.Close()
	if n := openFDs(t); n != before {
		t.Fatalf("%d descriptors open after Close, want %d", n, before)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	n, err := procfs.FDs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return n
}
