// Package signals routes operating-system signals to actions, with hooks
// that run before and after each action.
//
// A Router knows, for each signal, an action and two ordered lists of hooks.
// Delivering a signal runs the Before hooks in registration order, then the
// action, then the After hooks in registration order, all on one goroutine.
// Each delivery runs on a goroutine of its own, so a slow action (a restart
// waiting for its child) never delays another signal (a shutdown); the
// action is expected to refuse work it cannot do concurrently.
//
// Signals come from a Source. The default one is os/signal; tests inject
// their own and deliver signals without sending any to the process.
package signals

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"sync"
)

// Source subscribes a channel to signals. os/signal's Notify and Stop have
// this shape; OS wraps them.
type Source interface {
	Notify(c chan<- os.Signal, sig ...os.Signal)
	Stop(c chan<- os.Signal)
}

// OS is the Source of real signals.
type OS struct{}

// Notify relays sig to c, as signal.Notify does.
func (OS) Notify(c chan<- os.Signal, sig ...os.Signal) { signal.Notify(c, sig...) }

// Stop stops relaying to c, as signal.Stop does.
func (OS) Stop(c chan<- os.Signal) { signal.Stop(c) }

// bufferSize is how many deliveries may wait in the channel before the
// runtime drops one; os/signal never blocks, so a burst beyond it is lost,
// as it would be for any process.
const bufferSize = 32

type route struct {
	before, after []func()
	action        func()
}

// Router maps signals to actions and hooks. The zero value is not usable;
// create one with NewRouter.
type Router struct {
	src Source

	mu      sync.Mutex
	routes  map[os.Signal]*route
	order   []os.Signal // routed signals, in the order they were first named
	ch      chan os.Signal
	running bool
	wg      sync.WaitGroup // deliveries in flight
}

// NewRouter returns a router fed by src, or by real signals if src is nil.
func NewRouter(src Source) *Router {
	if src == nil {
		src = OS{}
	}
	return &Router{src: src, routes: make(map[os.Signal]*route)}
}

// routeLocked returns the route of sig, creating it and, while the router
// runs, subscribing to sig.
func (r *Router) routeLocked(sig os.Signal) *route {
	rt, ok := r.routes[sig]
	if !ok {
		rt = &route{}
		r.routes[sig] = rt
		r.order = append(r.order, sig)
		if r.running {
			r.src.Notify(r.ch, sig)
		}
	}
	return rt
}

// Handle sets the action of sig, replacing any earlier one. A nil fn
// leaves the signal with hooks only.
func (r *Router) Handle(sig os.Signal, fn func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routeLocked(sig).action = fn
}

// Before adds fn to the hooks that run before the action of sig.
func (r *Router) Before(sig os.Signal, fn func()) {
	if fn == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rt := r.routeLocked(sig)
	rt.before = append(rt.before, fn)
}

// After adds fn to the hooks that run after the action of sig.
func (r *Router) After(sig os.Signal, fn func()) {
	if fn == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rt := r.routeLocked(sig)
	rt.after = append(rt.after, fn)
}

// Dispatch runs the hooks and the action of sig on the calling goroutine
// and reports whether sig has a route at all.
func (r *Router) Dispatch(sig os.Signal) bool {
	r.mu.Lock()
	rt, ok := r.routes[sig]
	var before, after []func()
	var action func()
	if ok {
		// Copy under the lock: hooks added while this delivery runs apply
		// to the next one.
		before = append(before, rt.before...)
		after = append(after, rt.after...)
		action = rt.action
	}
	r.mu.Unlock()
	if !ok {
		return false
	}
	for _, fn := range before {
		fn()
	}
	if action != nil {
		action()
	}
	for _, fn := range after {
		fn()
	}
	return true
}

// ErrRunning is returned by Run when the router already runs.
var ErrRunning = errors.New("signals: router already running")

// Run subscribes to every routed signal and dispatches each delivery on a
// goroutine of its own until ctx is done. It then unsubscribes, waits for
// the deliveries in flight and returns nil. Run may be called once at a
// time.
func (r *Router) Run(ctx context.Context) error {
	ch, err := r.subscribe()
	if err != nil {
		return err
	}
	r.loop(ctx, ch)
	return nil
}

// Start is Run on a goroutine of its own, except that it has subscribed
// when it returns: a signal sent from then on is routed, never left to its
// default action (for SIGTERM or SIGHUP, the end of the process). The
// channel it returns is closed once Run would have returned.
func (r *Router) Start(ctx context.Context) (<-chan struct{}, error) {
	ch, err := r.subscribe()
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.loop(ctx, ch)
	}()
	return done, nil
}

// subscribe subscribes to every routed signal, and to those routed later
// until loop ends.
func (r *Router) subscribe() (chan os.Signal, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return nil, ErrRunning
	}
	r.ch = make(chan os.Signal, bufferSize)
	r.running = true
	if len(r.order) > 0 {
		r.src.Notify(r.ch, r.order...)
	}
	return r.ch, nil
}

// loop dispatches what arrives on ch until ctx is done, then
// unsubscribes and waits for the deliveries in flight.
func (r *Router) loop(ctx context.Context, ch chan os.Signal) {
	defer func() {
		r.mu.Lock()
		r.src.Stop(ch)
		r.running = false
		r.mu.Unlock()
		r.wg.Wait()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-ch:
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.Dispatch(sig)
			}()
		}
	}
}
