// Package handoff is a library for Go servers that never drop a client.
//
// One process serves many named listeners: HTTP, HTTPS with HTTP/2, and raw
// TCP. On SIGHUP it runs its own binary again and hands every listening
// socket to the new process, which says when it serves; only then does the
// old process stop accepting, finish what it has in flight, and exit. No
// connection is refused and no request is cut.
//
// The library lives in these packages:
//
//   - server: the lifecycle (Serve, Restart, Shutdown, Hammer,
//     ReloadCerts), signal wiring, PID file and logging. Start here.
//   - listeners: the kinds of listener (HTTP, TCP, TLS, H2C) and their
//     sockets.
//   - order: the name-to-descriptor manifest passed to a new process.
//   - signals: signal routing with Before and After hooks.
//   - tlsreload: certificates swapped in place without a restart.
//   - hijack: the registry of hijacked connections (websockets).
//
// # Usage
//
//	srv := server.New(server.WithHandler(mux))
//	srv.Listen("api", ":8080").
//		Listen("admin", "127.0.0.1:9090", listeners.HTTP(adminMux)).
//		Listen("echo", ":7000", listeners.TCP(echo))
//	if err := srv.Serve(); err != nil {
//		log.Fatal(err)
//	}
//
// # Signals
//
//	SIGHUP   restart: run the binary on disk now, hand it every listener,
//	         drain and exit once it serves. A failed child is killed and
//	         the old process goes on serving.
//	SIGINT,
//	SIGTERM  drain and exit.
//	SIGUSR1  reload the certificates of every TLS listener, in place.
//	SIGUSR2  hammer time: close whatever a drain still waits for.
//	SIGTSTP  hooks only.
//
// Each signal runs its Before hooks, its action, then its After hooks.
//
// # Pitfalls
//
// A restart runs the binary that is on disk at that moment: build the new
// version first, then send SIGHUP. Replace the file by renaming a new one
// over it (as go build and install(1) do); writing into the running file
// fails with "text file busy".
//
// The process that serves changes pid at every restart. A supervisor that
// follows the main pid (systemd with Type=simple, a container runtime with
// the server as pid 1) must be told: use the PID file (server.WithPIDFile)
// with systemd's PIDFile= setting.
//
// Restart is not available on Windows; everything else is.
package handoff
