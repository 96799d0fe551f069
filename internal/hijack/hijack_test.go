package hijack

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

type closer struct{ closed atomic.Int32 }

func (c *closer) Close() error { c.closed.Add(1); return nil }

func TestRegistry(t *testing.T) {
	var r Registry // the zero value is ready
	a, b := &closer{}, &closer{}
	doneA := r.Add(a)
	r.Add(b)
	if r.Len() != 2 {
		t.Fatalf("Len = %d, want 2", r.Len())
	}
	doneA()
	doneA() // harmless
	if r.Len() != 1 {
		t.Fatalf("Len after done = %d, want 1", r.Len())
	}
	if n := r.Hammer(context.Canceled); n != 1 || b.closed.Load() != 1 || a.closed.Load() != 0 {
		t.Fatalf("Hammer closed %d (a %d, b %d), want only b", n, a.closed.Load(), b.closed.Load())
	}
	if r.Hammered() != 1 {
		t.Fatalf("Hammered = %d", r.Hammered())
	}
}

func TestDrainNotifies(t *testing.T) {
	var r Registry
	ctx := NewContext(context.Background(), &r)
	ch := Notify(ctx)
	var ran sync.WaitGroup
	ran.Add(2)
	r.OnShutdown(ran.Done)
	r.OnShutdown(ran.Done)
	select {
	case <-ch:
		t.Fatal("draining before Drain")
	default:
	}
	r.Drain()
	r.Drain() // only the first counts
	<-ch
	ran.Wait()
	// Registered after the drain started: runs at once.
	late := make(chan struct{})
	r.OnShutdown(func() { close(late) })
	<-late
	if err := r.WaitHooks(context.Background()); err != nil {
		t.Fatal(err)
	}
	if Notify(context.Background()) != nil {
		t.Fatal("Notify without a registry is not nil")
	}
}

func TestWaitHooksHonoursContext(t *testing.T) {
	var r Registry
	release := make(chan struct{})
	r.OnShutdown(func() { <-release })
	r.Drain()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := r.WaitHooks(ctx); err != context.DeadlineExceeded {
		t.Fatalf("WaitHooks = %v, want DeadlineExceeded", err)
	}
	close(release)
	if err := r.WaitHooks(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentUse(t *testing.T) {
	var r Registry
	var wg sync.WaitGroup
	const workers, each = 8, 500
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				done := r.Add(&closer{})
				_ = r.Len()
				done()
			}
		}()
	}
	wg.Add(2)
	go func() { defer wg.Done(); r.Drain() }()
	go func() { defer wg.Done(); r.Hammer(context.Canceled) }()
	wg.Wait()
	if r.Len() != 0 {
		t.Fatalf("Len = %d after every conn was done", r.Len())
	}
}

// A wait that times out leaves no goroutine behind.
func TestWaitHooksLeavesNothing(t *testing.T) {
	defer goleak.VerifyNone(t)
	var r Registry
	release := make(chan struct{})
	r.OnShutdown(func() { <-release })
	r.Drain()
	for range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		r.WaitHooks(ctx)
		cancel()
	}
	close(release)
	if err := r.WaitHooks(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Callbacks registered after the drain started run at once, while the
// drain may be waiting for the others: the count they share is safe
// under the race detector (a WaitGroup's Add may not race its Wait).
func TestLateCallbacksWhileWaiting(t *testing.T) {
	var r Registry
	r.Drain()
	var ran atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 200 {
				r.OnShutdown(func() { ran.Add(1) })
			}
		}()
		go func() {
			defer wg.Done()
			for range 200 {
				r.WaitHooks(context.Background())
			}
		}()
	}
	wg.Wait()
	if err := r.WaitHooks(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := ran.Load(); n != 800 {
		t.Fatalf("%d callbacks ran, want 800", n)
	}
}
