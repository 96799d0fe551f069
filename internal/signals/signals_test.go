package signals

import (
	"context"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeSource records subscriptions and lets a test deliver signals.
type fakeSource struct {
	mu   sync.Mutex
	subs map[chan<- os.Signal][]os.Signal
	sub  chan struct{} // receives after every Notify
}

func newFakeSource() *fakeSource {
	return &fakeSource{subs: map[chan<- os.Signal][]os.Signal{}, sub: make(chan struct{}, 16)}
}

func (f *fakeSource) Notify(c chan<- os.Signal, sig ...os.Signal) {
	f.mu.Lock()
	f.subs[c] = append(f.subs[c], sig...)
	f.mu.Unlock()
	f.sub <- struct{}{}
}

func (f *fakeSource) Stop(c chan<- os.Signal) {
	f.mu.Lock()
	delete(f.subs, c)
	f.mu.Unlock()
}

// send delivers sig to every channel subscribed to it and reports how many.
func (f *fakeSource) send(sig os.Signal) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for c, sigs := range f.subs {
		if slices.Contains(sigs, sig) {
			c <- sig
			n++
		}
	}
	return n
}

func (f *fakeSource) subscribed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

func TestDispatchOrder(t *testing.T) {
	r := NewRouter(newFakeSource())
	var got []string
	r.Before(syscall.SIGHUP, func() { got = append(got, "before1") })
	r.After(syscall.SIGHUP, func() { got = append(got, "after1") })
	r.Handle(syscall.SIGHUP, func() { got = append(got, "action") })
	r.Before(syscall.SIGHUP, func() { got = append(got, "before2") })
	r.After(syscall.SIGHUP, func() { got = append(got, "after2") })

	if !r.Dispatch(syscall.SIGHUP) {
		t.Fatal("Dispatch(SIGHUP) = false")
	}
	want := []string{"before1", "before2", "action", "after1", "after2"}
	if !slices.Equal(got, want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
	if r.Dispatch(syscall.SIGQUIT) {
		t.Fatal("Dispatch of an unrouted signal = true")
	}
}

func TestHandleReplacesAction(t *testing.T) {
	r := NewRouter(newFakeSource())
	var got []string
	r.Handle(syscall.SIGTERM, func() { got = append(got, "default") })
	r.Handle(syscall.SIGTERM, func() { got = append(got, "mine") })
	r.Dispatch(syscall.SIGTERM)
	if !slices.Equal(got, []string{"mine"}) {
		t.Fatalf("got %v, want [mine]", got)
	}
	// Hooks without an action still run.
	got = nil
	r.Handle(syscall.SIGTERM, nil)
	r.Before(syscall.SIGTERM, func() { got = append(got, "hook") })
	r.Dispatch(syscall.SIGTERM)
	if !slices.Equal(got, []string{"hook"}) {
		t.Fatalf("got %v, want [hook]", got)
	}
}

func TestRunDeliversAndStops(t *testing.T) {
	src := newFakeSource()
	r := NewRouter(src)
	hup := make(chan struct{}, 4)
	term := make(chan struct{}, 4)
	r.Handle(syscall.SIGHUP, func() { hup <- struct{}{} })

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	<-src.sub // Run subscribed

	// A route added while running is subscribed at once.
	r.Handle(syscall.SIGTERM, func() { term <- struct{}{} })
	<-src.sub

	if n := src.send(syscall.SIGHUP); n != 1 {
		t.Fatalf("SIGHUP reached %d channels", n)
	}
	if n := src.send(syscall.SIGTERM); n != 1 {
		t.Fatalf("SIGTERM reached %d channels", n)
	}
	for _, c := range []chan struct{}{hup, term} {
		select {
		case <-c:
		case <-time.After(5 * time.Second):
			t.Fatal("signal not dispatched")
		}
	}
	if err := r.Run(context.Background()); err != ErrRunning {
		t.Fatalf("second Run = %v, want ErrRunning", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := src.subscribed(); n != 0 {
		t.Fatalf("%d subscriptions left after Run returned", n)
	}
}

// A slow action must not hold back another signal.
func TestSlowActionDoesNotBlockOthers(t *testing.T) {
	src := newFakeSource()
	r := NewRouter(src)
	release := make(chan struct{})
	started := make(chan struct{})
	termed := make(chan struct{})
	r.Handle(syscall.SIGHUP, func() { close(started); <-release })
	r.Handle(syscall.SIGTERM, func() { close(termed) })

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	<-src.sub
	src.send(syscall.SIGHUP)
	<-started
	src.send(syscall.SIGTERM)
	select {
	case <-termed:
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM waited for the SIGHUP action")
	}
	cancel()
	// Run waits for the slow delivery before returning.
	select {
	case <-done:
		t.Fatal("Run returned while a delivery was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestStartSubscribesBeforeItReturns: a signal sent the moment Start
// returns is routed, never left to its default action.
func TestStartSubscribesBeforeItReturns(t *testing.T) {
	src := newFakeSource()
	r := NewRouter(src)
	termed := make(chan struct{}, 1)
	r.Handle(syscall.SIGTERM, func() { termed <- struct{}{} })
	ctx, cancel := context.WithCancel(context.Background())
	done, err := r.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := src.send(syscall.SIGTERM); n != 1 {
		t.Fatalf("SIGTERM sent as Start returned reached %d channels, want 1", n)
	}
	select {
	case <-termed:
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM not dispatched")
	}
	if _, err := r.Start(context.Background()); err != ErrRunning {
		t.Fatalf("second Start = %v, want ErrRunning", err)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Start's loop did not end with its context")
	}
	if n := src.subscribed(); n != 0 {
		t.Fatalf("%d subscriptions left after the loop ended", n)
	}
}
