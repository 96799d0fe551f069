//go:build unix

package server

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/internal/listen"
)

// The signals a master sends: SIGWINCH tells a replaced worker to drain
// at once (no shutdown delay: it is not going out of rotation, the new
// worker is already serving), as nginx's master tells its workers; SIGUSR1
// and SIGUSR2 are forwarded for ReloadCerts and Hammer.
const (
	sigReplaced = syscall.SIGWINCH
	sigReload   = syscall.SIGUSR1
	sigHammer   = syscall.SIGUSR2
)

// addr is the address of the socket called name, or nil.
func (m *master) addr(name string) net.Addr {
	for _, sk := range m.socks {
		if sk.name == name {
			return listen.AddrOf(sk.ln)
		}
	}
	return nil
}

// stats is the generation of the newest worker and the sockets held.
func (m *master) stats() (int, []ListenerStats) {
	var out []ListenerStats
	for _, sk := range m.socks {
		ls := ListenerStats{Name: sk.name, Addr: listen.AddrOf(sk.ln).String()}
		for _, d := range m.s.decls {
			if d.name == sk.name {
				ls.Network, ls.Kind, ls.TLS = d.addr.Network, d.spec.Kind.String(), d.spec.TLS()
			}
		}
		out = append(out, ls)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen, out
}

// forwardAll sends sig to every worker, replaced ones still draining
// included.
func (m *master) forwardAll(sig syscall.Signal) error {
	var errs []error
	for _, w := range m.all() {
		if err := w.Signal(sig); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// forward sends sig to the current worker.
func (m *master) forward(sig syscall.Signal) error {
	w := m.worker()
	if w == nil {
		return ErrNotServing
	}
	return w.Signal(sig)
}

// reap sees workers exit and hands them to run. It reaps its own workers
// only, so the program's other children keep their statuses for whoever
// waits for them; as PID 1 it reaps every child, orphans included.
func (m *master) reap(sigchld <-chan os.Signal, done <-chan struct{}) {
	tick := time.NewTicker(m.reapEvery)
	defer tick.Stop()
	for {
		for _, w := range m.reapOnce() {
			select {
			case m.exits <- w:
			case <-done:
				return
			}
		}
		select {
		case <-done:
			return
		case <-sigchld:
		case <-m.poke:
		case <-tick.C:
		}
	}
}

// reapOnce reaps whatever has exited and returns the workers among it.
func (m *master) reapOnce() []*worker {
	var out []*worker
	exited := func(w *worker, status error) {
		m.mu.Lock()
		delete(m.workers, w.Pid())
		m.mu.Unlock()
		w.status = status
		close(w.exited)
		out = append(out, w)
	}
	if m.init {
		for {
			pid, status, ok := m.s.sys.ReapAny()
			if !ok {
				return out
			}
			m.mu.Lock()
			w := m.workers[pid]
			m.mu.Unlock()
			if w == nil {
				m.s.log.Debug().Int("orphan", pid).Msg("reaped an orphan")
				continue
			}
			exited(w, status)
		}
	}
	for _, w := range m.all() {
		if gone, status := w.Process.Poll(); gone {
			exited(w, status)
		}
	}
	return out
}
