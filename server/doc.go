// Package server runs named listeners that survive restarts of the program
// without a refused connection or a cut request.
//
// # Serving
//
//	srv := server.New(server.WithHandler(mux), server.WithPIDFile("/run/app/app.pid"))
//	srv.Listen("api", ":8080").
//		Listen("admin", "127.0.0.1:9090", listeners.HTTP(adminMux)).
//		Listen("echo", ":7000", listeners.TCP(echo))
//	if err := srv.Serve(); err != nil {
//		log.Fatal(err)
//	}
//
// Serve opens every listener, inherited from a parent process or bound
// fresh, serves until it is asked to stop or has handed its listeners to a
// new process, drains, and returns. Addresses name their network:
// "host:port" (TCP), "udp:host:port", "unix:/path" or "unix:@name". Other
// descriptors go to the new process by name: PassFile, InheritedFile. Configuration errors (a duplicate name,
// a bad address, a port in use, an unreadable certificate) are returned by
// Serve; nothing panics.
//
// # Signals and methods
//
//	SIGHUP   Restart       run the binary now on disk, hand it the sockets,
//	                       drain once it is ready; on failure serve on
//	SIGTERM,
//	SIGINT   Shutdown      stop accepting, finish what is open, return
//	SIGUSR1  ReloadCerts   re-read certificate files in place
//	SIGUSR2  Hammer        close what a drain still waits for
//	SIGTSTP                hooks only
//
// Before, After and Handle attach hooks to, or replace, any of them.
//
// # Restart
//
// The parent passes each socket as descriptor 3, 4, … with their names in
// ENDLESS_SOCKET_ORDER, its pid in ENDLESS_PARENT_PID and a readiness pipe
// after the sockets. The child marks them close-on-exec before the
// program's code runs, validates every descriptor, binds afresh any
// listener it declares that was not passed (or whose address changed) and
// writes "ready". The parent then writes the child's pid into the PID
// file, drains and returns from Serve. A child that exits, or is not ready
// within the ready timeout (WithReadyTimeout), is killed and reaped; the
// parent serves on and the PID file does not change. A child whose parent
// died during the handshake adopts the sockets and serves. No restart
// starts once a stop has been asked for.
//
// # Drain
//
// HTTP/1.1 responses carry "Connection: close" during a drain; an idle
// keep-alive connection is half-closed once it has read nothing for the
// idle grace (WithIdleGrace) and has no unread bytes, so no client sending
// a request is cut. HTTP/2 connections get GOAWAY in two steps, so no
// stream in flight is refused. TCP handlers see their context cancelled.
// Hijacked connections are told through RegisterOnShutdown and
// hijack.Notify. Hammer time (WithHammerTime) bounds it all.
//
// # Supervisors
//
// systemd: sd_notify (READY, RELOADING, MAINPID of the new process,
// STOPPING, WATCHDOG) and socket activation. Containers and terminals:
// WithMaster, chosen by itself as PID 1 and for a binary go run built
// (go run deletes it once its child exits), keeps one pid and runs the server
// in a worker it replaces on SIGHUP; it waits for every worker before it
// exits, and reaps children other than its workers only as PID 1.
// Kubernetes: WithShutdownDelay and HealthHandler. See docs/operations.md
// in the repository for units and manifests.
//
// # Pitfalls
//
// A restart runs the binary on disk at that moment: build the new version
// first, and replace the file by renaming over it. In fork mode the pid
// changes at every restart: point the supervisor at the PID file, or use
// master mode. Restart is not available on Windows (ErrRestartUnsupported).
package server
