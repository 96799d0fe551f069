package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/handoff-go/handoff/internal/logx"
)

// Defaults of the options. DefaultReadHeaderTimeout and DefaultIdleTimeout
// are the http.Server's of every HTTP listener (listeners.Configure changes
// them). Deadlines of accepted connections that are 5 s or more ahead are
// kept by the listener's connection tracker, which sets one on the socket
// when it is due and looks once a second: they fire up to a second late,
// and moving them costs no runtime timer. HTTP/1 idle and header timeouts
// of 5 s or more, as these are, are the tracker's own: it dates them on
// its coarse clock, so that net/http reads no clock for them, and they
// fire up to two seconds late; a new connection's header timeout runs
// from its accept, its TLS handshake included. Nearer deadlines and
// shorter timeouts stay exact, as do the deadlines of hijacked
// connections and HTTP/2's timeouts.
const (
	DefaultReadyTimeout      = 30 * time.Second
	DefaultHammerTime        = 60 * time.Second
	DefaultIdleGrace         = time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultCertWatch         = time.Second
)

type config struct {
	handler       http.Handler
	log           logx.Logger
	readyTimeout  time.Duration
	hammerTime    time.Duration
	idleGrace     time.Duration
	certWatch     time.Duration
	pidFile       string
	shutdownDelay time.Duration
	master        bool
	executable    string
	childEnv      func([]string) []string
	source        SignalSource
	errs          []error
}

func defaultConfig() config {
	return config{
		log:          logx.Zerolog(defaultLogger(os.Stderr)),
		readyTimeout: DefaultReadyTimeout,
		hammerTime:   DefaultHammerTime,
		idleGrace:    DefaultIdleGrace,
		certWatch:    DefaultCertWatch,
	}
}

// defaultLogger writes JSON lines to w, each timed in UTC by utcTime.
func defaultLogger(w io.Writer) zerolog.Logger { return zerolog.New(w).Hook(utcTime{}) }

// utcTime stamps each line of the default logger with the time in UTC.
// Local time would make every process load its time zone at its first
// line, at each restart, for a field that machines read.
type utcTime struct{}

func (utcTime) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Time(zerolog.TimestampFieldName, time.Now().UTC())
}

// Option configures a Server.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

func positive(c *config, what string, d time.Duration) bool {
	if d <= 0 {
		c.errs = append(c.errs, fmt.Errorf("server: %s must be positive, got %v", what, d))
		return false
	}
	return true
}

// WithHandler is the handler of every HTTP listener declared without one.
// Without it they serve http.DefaultServeMux.
func WithHandler(h http.Handler) Option {
	return optionFunc(func(c *config) { c.handler = h })
}

// WithLogger sets the logger. Every line carries the pid, and the listener
// name where one applies. The default writes JSON lines to stderr, timed
// in UTC.
func WithLogger(l zerolog.Logger) Option {
	return optionFunc(func(c *config) { c.log = logx.Zerolog(l) })
}

// WithSlog sends every record the server writes to l instead of zerolog,
// with the same level, message and attributes (pid, listener, generation,
// child pid, durations as time.Duration, errors as strings).
func WithSlog(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l == nil {
			c.errs = append(c.errs, errors.New("server: WithSlog needs a logger"))
			return
		}
		c.log = logx.Slog(l)
	})
}

// WithReadyTimeout bounds how long a restart waits for the new process to
// report that it serves; a child not ready by then is killed and the old
// process goes on serving. Default 30s.
func WithReadyTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if positive(c, "ready timeout", d) {
			c.readyTimeout = d
		}
	})
}

// WithHammerTime bounds every drain: what is still open when it runs out
// is closed by force. Default 60s.
func WithHammerTime(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if positive(c, "hammer time", d) {
			c.hammerTime = d
		}
	})
}

// WithIdleGrace is how long, during a drain, an idle HTTP/1 keep-alive
// connection is left open for a request the client may already be sending.
// Default 1s.
func WithIdleGrace(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if positive(c, "idle grace", d) {
			c.idleGrace = d
		}
	})
}

// WithPIDFile keeps path holding the pid of the serving process, replaced
// atomically by each new process once it serves.
func WithPIDFile(path string) Option {
	return optionFunc(func(c *config) { c.pidFile = path })
}

// SignalSource subscribes a channel to signals; os/signal's Notify and
// Stop have this shape. Tests, and programs that drive the server through
// its methods only, give WithSignals one of their own.
type SignalSource interface {
	Notify(c chan<- os.Signal, sig ...os.Signal)
	Stop(c chan<- os.Signal)
}

// WithSignals takes signals from src instead of the operating system. A
// program that drives the server only through its methods can pass a
// source that never delivers.
func WithSignals(src SignalSource) Option {
	return optionFunc(func(c *config) { c.source = src })
}

// WithShutdownDelay keeps serving for d after SIGTERM or SIGINT, with
// HealthHandler answering 503, before the drain starts: time for a load
// balancer or Kubernetes to stop sending new connections. The same signal
// again ends the delay.
func WithShutdownDelay(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if positive(c, "shutdown delay", d) {
			c.shutdownDelay = d
		}
	})
}

// WithMaster runs the server in master mode: the process keeps its pid for
// the life of the service and runs the serving code in a worker process it
// replaces on SIGHUP, with the same handoff as a restart. For PID 1 in a
// container and for foreground use (a terminal, go run, a supervisor that
// follows one pid). A process that is PID 1 chooses it by itself.
func WithMaster() Option {
	return optionFunc(func(c *config) { c.master = true })
}

// WithExecutable makes every restart run the program at path (absolute,
// or relative to the directory the program started in) instead of the
// path the program was started by. The file is looked up at each
// restart; Serve checks that it is there and executable.
func WithExecutable(path string) Option {
	return optionFunc(func(c *config) {
		if path == "" {
			c.errs = append(c.errs, errors.New("server: WithExecutable needs a path"))
			return
		}
		c.executable = path
	})
}

// WithChildEnv lets fn choose the environment of the process a restart
// starts. fn is called at each restart with this process's environment as
// it is at that moment (os.Setenv in a Before(SIGHUP) hook shows), less
// handoff's own variables, and returns the child's; handoff adds its own
// variables to it. Without WithChildEnv the child gets the environment
// unchanged.
func WithChildEnv(fn func(env []string) []string) Option {
	return optionFunc(func(c *config) {
		if fn == nil {
			c.errs = append(c.errs, errors.New("server: WithChildEnv needs a function"))
			return
		}
		c.childEnv = fn
	})
}

// WithCertWatch sets how often the certificate files of listeners.TLSFiles
// are looked at: a change (a file renamed over, a Kubernetes secret's
// ..data swapped) is reloaded without a signal, once the files have held
// still for one more look, with the checks of SIGUSR1. On Linux, inotify
// on the files' directories also wakes the watch at once (a reload then
// follows 100ms after the last change); the looks are the backstop for
// what inotify does not see, such as network filesystems. Default 1s; 0
// turns the watching off, both ways (SIGUSR1 and ReloadCerts still work).
func WithCertWatch(every time.Duration) Option {
	return optionFunc(func(c *config) {
		if every < 0 {
			c.errs = append(c.errs, fmt.Errorf("server: cert watch interval must not be negative, got %v", every))
			return
		}
		c.certWatch = every
	})
}
