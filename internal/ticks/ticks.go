// Package ticks paces periodic work without a runtime timer where the
// system allows it.
//
// While any runtime timer is pending, Go's scheduler reads the clock each
// time it picks a goroutine to run: several times per request of a busy
// server. On a virtual machine, whose clock is slow to read, that is a
// per cent or two of a small request's cost, paid by every request for a
// tick once a second or twice a day. On Linux the ticks here come from a
// timerfd read through the runtime's network poller instead, which costs
// nothing between ticks; elsewhere, and if no timerfd can be had, from a
// runtime timer.
package ticks

import (
	"sync"
	"time"
)

// Ticks come once every period until closed. A tick missed because
// nobody waited is not kept: Wait returns at the next one after it is
// called, or at once if one is already due.
type Ticks interface {
	// Wait waits for the next tick, and reports false once Close has
	// been called.
	Wait() bool
	// Close ends the ticks and wakes a Wait in progress. It may be called
	// more than once, from any goroutine.
	Close()
}

// New returns ticks every d (more than zero).
func New(d time.Duration) Ticks {
	if t := newSystem(d); t != nil {
		return t
	}
	return newTimer(d)
}

// A Ticker delivers ticks on a channel, for use in a select, as a
// time.Ticker does.
type Ticker struct {
	C <-chan struct{}

	ticks Ticks
	done  chan struct{}
}

// NewTicker returns a ticker every d (more than zero). Stop it when done.
func NewTicker(d time.Duration) *Ticker {
	c := make(chan struct{}, 1)
	t := &Ticker{C: c, ticks: New(d), done: make(chan struct{})}
	go func() {
		defer close(t.done)
		for t.ticks.Wait() {
			select {
			case c <- struct{}{}:
			default: // the last one is still unread
			}
		}
	}()
	return t
}

// Stop ends the ticker, and returns once its goroutine has.
func (t *Ticker) Stop() {
	t.ticks.Close()
	<-t.done
}

// timerTicks are ticks from a runtime timer.
type timerTicks struct {
	t    *time.Ticker
	done chan struct{}
	once sync.Once
}

func newTimer(d time.Duration) *timerTicks {
	return &timerTicks{t: time.NewTicker(d), done: make(chan struct{})}
}

func (r *timerTicks) Wait() bool {
	select {
	case <-r.done:
		return false
	default:
	}
	select {
	case <-r.t.C:
		return true
	case <-r.done:
		return false
	}
}

func (r *timerTicks) Close() {
	r.once.Do(func() {
		r.t.Stop()
		close(r.done)
	})
}
