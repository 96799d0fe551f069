// Package hijack keeps the server's registry of hijacked connections (websockets,
// CONNECT tunnels, anything an HTTP handler took over with Hijack), which
// net/http forgets the moment they are hijacked.
//
// The registry knows who is open, tells them when a drain starts, lets the
// drain wait for them, and force-closes them at hammer time:
//
//   - Add records a connection; the func it returns forgets it again (the
//     server calls it when the connection closes).
//   - OnShutdown callbacks run, each on a goroutine of its own, when Drain
//     is called, so a websocket handler can send a close frame.
//   - Draining returns a channel closed by Drain, for handlers that prefer
//     to select; Notify finds it from a request's context.
//   - Hammer closes every connection still open.
//
// The zero value is ready to use.
package hijack

import (
	"context"
	"io"
	"sync"
)

// Registry tracks hijacked connections. The zero value is ready to use.
type Registry struct {
	mu       sync.Mutex
	conns    map[*entry]struct{}
	hooks    []func()
	draining chan struct{}
	drained  bool
	hammered int
	running  int           // OnShutdown callbacks still running
	idle     chan struct{} // closed when running drops to 0; nil while 0
}

type entry struct{ c io.Closer }

func (r *Registry) drainingLocked() chan struct{} {
	if r.draining == nil {
		r.draining = make(chan struct{})
	}
	return r.draining
}

// Add records c and returns the func that forgets it, to be called once c
// is closed. Calling it more than once is harmless.
func (r *Registry) Add(c io.Closer) (done func()) {
	e := &entry{c}
	r.mu.Lock()
	if r.conns == nil {
		r.conns = make(map[*entry]struct{})
	}
	r.conns[e] = struct{}{}
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		delete(r.conns, e)
		r.mu.Unlock()
	}
}

// Len is the number of open connections.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns)
}

// OnShutdown registers fn to run when a drain starts. Registered after the
// drain has started, fn runs at once.
func (r *Registry) OnShutdown(fn func()) {
	if fn == nil {
		return
	}
	r.mu.Lock()
	if r.drained {
		r.mu.Unlock()
		r.goHook(fn)
		return
	}
	r.hooks = append(r.hooks, fn)
	r.mu.Unlock()
}

// goHook runs fn on a goroutine of its own, counted until it returns.
func (r *Registry) goHook(fn func()) {
	r.mu.Lock()
	if r.running == 0 {
		r.idle = make(chan struct{})
	}
	r.running++
	r.mu.Unlock()
	go func() {
		defer func() {
			r.mu.Lock()
			r.running--
			if r.running == 0 {
				close(r.idle)
				r.idle = nil
			}
			r.mu.Unlock()
		}()
		fn()
	}()
}

// Drain starts a drain: it closes the Draining channel and runs every
// OnShutdown callback on a goroutine of its own. Only the first call does
// anything.
func (r *Registry) Drain() {
	r.mu.Lock()
	if r.drained {
		r.mu.Unlock()
		return
	}
	r.drained = true
	close(r.drainingLocked())
	hooks := r.hooks
	r.hooks = nil
	r.mu.Unlock()
	for _, fn := range hooks {
		r.goHook(fn)
	}
}

// Draining returns a channel that is closed when the drain starts.
func (r *Registry) Draining() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.drainingLocked()
}

// WaitHooks waits until every OnShutdown callback has returned or ctx is
// done, and returns ctx.Err() in the latter case. It leaves nothing
// behind: a callback that never returns costs its own goroutine only.
func (r *Registry) WaitHooks(ctx context.Context) error {
	for {
		r.mu.Lock()
		idle := r.idle
		r.mu.Unlock()
		if idle == nil {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Hammer closes every open connection and returns how many it closed. A
// connection with a Kill(cause) method (the server's) is killed with cause
// instead, so its handler's context says why.
func (r *Registry) Hammer(cause error) int {
	r.mu.Lock()
	open := make([]io.Closer, 0, len(r.conns))
	for e := range r.conns {
		open = append(open, e.c)
	}
	r.hammered += len(open)
	r.mu.Unlock()
	for _, c := range open {
		if k, ok := c.(interface{ Kill(error) }); ok {
			k.Kill(cause)
			continue
		}
		c.Close()
	}
	return len(open)
}

// Hammered is how many connections Hammer has closed in all.
func (r *Registry) Hammered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hammered
}

type ctxKey struct{}

// NewContext returns a context that carries r, for Notify to find.
func NewContext(ctx context.Context, r *Registry) context.Context {
	return context.WithValue(ctx, ctxKey{}, r)
}

// FromContext returns the registry carried by ctx, or nil.
func FromContext(ctx context.Context) *Registry {
	r, _ := ctx.Value(ctxKey{}).(*Registry)
	return r
}

// Notify returns the Draining channel of the registry ctx carries, or
// nil.
func Notify(ctx context.Context) <-chan struct{} {
	if r := FromContext(ctx); r != nil {
		return r.Draining()
	}
	return nil
}
