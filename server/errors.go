package server

import "errors"

// Errors of the lifecycle. They are defined on every platform, so code
// that names them builds everywhere.
var (
	ErrServing           = errors.New("server: Serve already called")
	ErrClosed            = errors.New("server: closed")
	ErrNotServing        = errors.New("server: not serving")
	ErrStopping          = errors.New("server: stopping")
	ErrRestartInProgress = errors.New("server: a restart is already in progress")
	ErrRestartFailed     = errors.New("server: restart failed")
	ErrNotDraining       = errors.New("server: not draining")
	// ErrRestartUnsupported is returned by Restart on Windows, which cannot
	// pass listening sockets to a new process.
	ErrRestartUnsupported = errors.New("server: restart is not supported on Windows; stop and start the service instead")

	// ErrDraining is returned by Restart once a drain has started, and is
	// the cause (context.Cause) of a TCP handler's context, cancelled when
	// the drain starts.
	ErrDraining = errors.New("server: draining")
	// ErrHammered is the cause (context.Cause) of every handler context
	// cancelled at hammer time.
	ErrHammered = errors.New("server: hammer time")
)

// Why a restart failed, wrapped in ErrRestartFailed.
var (
	// ErrChildExited: the new process exited before it was ready.
	ErrChildExited = errors.New("child exited before it was ready")
	// ErrChildTimeout: the new process was not ready within the ready
	// timeout; it was killed.
	ErrChildTimeout = errors.New("child not ready in time")
	// ErrWorkerExited is returned by Serve in a master whose worker failed
	// (exited non-zero or was killed) without being asked to stop.
	ErrWorkerExited = errors.New("server: worker exited unexpectedly")
)
