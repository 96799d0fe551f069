package osx

import (
	"testing"
	"time"
)

func watch(t *testing.T, p Process) (<-chan struct{}, func()) {
	t.Helper()
	exited, stop := p.(*process).WatchExit()
	if exited == nil {
		t.Fatal("no exit watch: this kernel has no pidfd_open")
	}
	return exited, stop
}

// The watch sees a process end, and leaves it to Poll to reap, with its
// status.
func TestWatchExitSeesTheEndWithoutReaping(t *testing.T) {
	p := startCmd(t, "sleep", "60")
	exited, stop := watch(t, p)
	defer stop()
	select {
	case <-exited:
		t.Fatal("the watch says a sleeping process exited")
	default:
	}
	if gone, _ := p.Poll(); gone {
		t.Fatal("sleep 60 exited at once")
	}
	p.Kill()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not see the kill within 10s")
	}
	gone, status := p.Poll()
	if !gone || status == nil || status.Error() != "signal: killed" {
		t.Fatalf("Poll after the watch: exited %v, status %v; want true, signal: killed", gone, status)
	}
}

// A process that has exited before the watch begins is seen at once.
func TestWatchExitOfAnExitedProcess(t *testing.T) {
	p := startCmd(t, "true")
	first, stop := watch(t, p)
	select {
	case <-first:
	case <-time.After(10 * time.Second):
		t.Fatal("true did not exit within 10s")
	}
	stop()
	again, stop := watch(t, p) // a zombie still: nobody has reaped it
	defer stop()
	select {
	case <-again:
	case <-time.After(10 * time.Second):
		t.Fatal("a watch begun after the exit did not see it")
	}
	if gone, status := p.Poll(); !gone || status != nil {
		t.Fatalf("Poll: exited %v, status %v; want true, nil", gone, status)
	}
}

// stop ends the watch of a process that lives on: the channel stays open
// and stop returns, more than once.
func TestWatchExitStop(t *testing.T) {
	p := startCmd(t, "sleep", "60")
	defer p.Wait()
	defer p.Kill()
	exited, stop := watch(t, p)
	stop()
	stop()
	select {
	case <-exited:
		t.Fatal("a stopped watch says the process exited")
	default:
	}
}
