package ticks

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Both kinds of ticks: the system's (where there are any) and the
// runtime timer's.
func kinds(d time.Duration) map[string]func() Ticks {
	return map[string]func() Ticks{
		"New":   func() Ticks { return New(d) },
		"timer": func() Ticks { return newTimer(d) },
	}
}

func TestTicks(t *testing.T) {
	defer goleak.VerifyNone(t)
	const every = 20 * time.Millisecond
	for name, newTicks := range kinds(every) {
		t.Run(name, func(t *testing.T) {
			tk := newTicks()
			start := time.Now()
			for i := range 3 {
				if !tk.Wait() {
					t.Fatalf("tick %d: closed", i)
				}
			}
			if took := time.Since(start); took < 3*every-time.Millisecond {
				t.Fatalf("three ticks in %v, want at least %v", took, 3*every)
			}
			// Close wakes a wait in progress.
			woke := make(chan bool)
			go func() { woke <- tk.Wait() }()
			tk.Close()
			select {
			case ok := <-woke:
				if ok {
					t.Error("Wait reported a tick after Close")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not wake Wait")
			}
			tk.Close() // again: no panic
			if tk.Wait() {
				t.Fatal("Wait after Close reported a tick")
			}
		})
	}
}

func TestTicker(t *testing.T) {
	defer goleak.VerifyNone(t)
	tk := NewTicker(10 * time.Millisecond)
	for i := range 3 {
		select {
		case <-tk.C:
		case <-time.After(5 * time.Second):
			t.Fatalf("tick %d never came", i)
		}
	}
	tk.Stop() // returns once its goroutine has: goleak checks
}
