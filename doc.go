// Package handoff is a library for Go servers that never drop a client.
//
// One process serves many named listeners: HTTP, HTTPS with HTTP/2, raw
// TCP, UDP, unix sockets, and any server of a net.Listener (gRPC). On
// SIGHUP it runs its own binary again and hands every socket to the new
// process, which says when it serves; only then does the old process stop
// accepting, finish what it has in flight, and exit. No connection is
// refused and no request is cut.
//
// The library is three packages:
//
//   - server: the lifecycle (Serve, Restart, Shutdown, Hammer,
//     ReloadCerts, Stats), signals and their hooks, PID file, service
//     managers, logging. Start here.
//   - listeners: the kinds of listener (HTTP, TCP, TLS, TLSFiles,
//     ClientCAs, H2C, Configure), given to server.Listen.
//   - hijack: Notify, which tells the handler of a hijacked connection (a
//     websocket) that the server is draining.
//
// The machinery behind them (the handoff protocol, the HTTP/2 drain, the
// certificate reloader, the connection tracker) is internal.
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
// The process that serves changes pid at every restart. Under systemd, use
// Type=notify (the old process tells systemd the new main pid) or the PID
// file (server.WithPIDFile with PIDFile=). As PID 1 (a container), and
// for a binary that go run built, the server picks master mode by itself
// and keeps its pid; server.WithMaster asks for it anywhere else (a
// terminal, a supervisor that follows one pid).
//
// A restart runs the program by the path it was started with, looked up
// again (a switched release symlink is followed), with the environment as
// it is at that moment; server.WithExecutable and server.WithChildEnv
// change either.
//
// Restart is not available on Windows; everything else is.
package handoff
