package server

// role is what the process does when asked, through a method or a signal,
// for what depends on the part it plays (see Server): a server restarts
// by itself, a worker asks its master, a master replaces its worker.
type role interface {
	restart() error
	reloadCerts() error
	hammer() error
	// stop is the default action of SIGTERM and SIGINT.
	stop(why string)
}

// serverRole is a process that serves its own listeners.
type serverRole struct{ s *Server }

func (r serverRole) restart() error     { return r.s.handOff() }
func (r serverRole) reloadCerts() error { return r.s.reloadOwnCerts() }
func (r serverRole) hammer() error      { return r.s.hammerOwn() }
func (r serverRole) stop(why string)    { r.s.stopAsked(why) }

// workerRole serves like a server; its master makes the restarts.
type workerRole struct{ serverRole }

func (r workerRole) restart() error { return r.s.askMaster() }

// currentRole is the role chosen when Serve started, or that of a server
// before then.
func (s *Server) currentRole() role {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.role == nil {
		return serverRole{s}
	}
	return s.role
}

// Restart runs the program's binary, as it is on disk now, as a child
// process and hands it every listener. It returns nil once the child has
// reported that it serves; this process then drains and Serve returns.
// If the child exits, crashes, or is not ready within the ready timeout,
// it is killed and reaped, this process goes on serving, and the error
// says why. Only one restart runs at a time, and none once a stop has been
// asked for (ErrStopping). SIGHUP calls Restart.
//
// In a master, Restart starts a new worker the same way and, once it is
// ready, tells the old one to drain. In a worker, Restart asks the master
// (SIGHUP) and returns once it has asked; the master logs the outcome.
func (s *Server) Restart() error { return s.currentRole().restart() }

// ReloadCerts re-reads the certificate files of every TLS listener built
// with listeners.TLSFiles, in this process. A listener whose new files fail
// a check keeps serving its current certificates; the error names it.
// SIGUSR1 calls ReloadCerts.
//
// In a master, it is sent (SIGUSR1) to the current worker, and returns
// once sent: the worker logs the outcome.
func (s *Server) ReloadCerts() error { return s.currentRole().reloadCerts() }

// Hammer ends a drain at once: every connection still open, hijacked ones
// included, is closed and every handler context is cancelled. Outside a
// drain it does nothing and returns ErrNotDraining. SIGUSR2 calls Hammer.
//
// In a master, it is sent (SIGUSR2) to every worker, so that replaced
// workers still draining are hammered; a worker that is not draining
// ignores it.
func (s *Server) Hammer() error { return s.currentRole().hammer() }
