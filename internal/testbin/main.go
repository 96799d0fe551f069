// Command testbin is the server that the end-to-end tests build, start,
// signal and measure. It uses the public API only.
//
// Routes: / answers "ok", /pid the pid, /gen the restart generation,
// /version the -X main.version the binary was built with, /slow?ms=N
// answers after N milliseconds, /ws echoes websocket messages and, on a
// drain, closes with 1001. The "echo" listener echoes raw TCP.
//
// A mode file lets a test make the next process misbehave: "lines-fail"
// makes the line server's serve fail at once, "crash" exits
// with status 3 before serving, "hang" never becomes ready, "badlisten"
// declares a listener on an address in use, "slow" waits two seconds
// before it serves, "spawn-crash" starts a long sleep (its pid written to
// grandchild.pid beside the mode file) and exits with status 1.
package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/handoff-go/handoff/acme"
	"github.com/handoff-go/handoff/http3"
	"github.com/handoff-go/handoff/internal/protocol"
	"github.com/handoff-go/handoff/internal/testserve"
	"github.com/handoff-go/handoff/listeners"
	"github.com/handoff-go/handoff/server"
)

var version = "1"

func main() {
	api := flag.String("api", "127.0.0.1:0", "api listener address")
	admin := flag.String("admin", "", "admin listener address, if any")
	echo := flag.String("echo", "", "echo (TCP) listener address, if any")
	tlsAddr := flag.String("tls", "", "TLS listener address, if any")
	unixPath := flag.String("unix", "", "path of a unix socket serving the HTTP routes, if any")
	udpAddr := flag.String("udp", "", "UDP address answering each datagram with \"PID datagram\", if any")
	noteFile := flag.String("notefile", "", "a file opened by the first process and passed to each new one by name; /note appends the pid and returns the content")
	lineAddr := flag.String("lines", "", "address of a line server run through listeners.Serve, if any")
	cert := flag.String("cert", "", "certificate file for -tls")
	key := flag.String("key", "", "key file for -tls")
	pidFile := flag.String("pidfile", "", "PID file")
	modeFile := flag.String("mode", "", "file whose content sets how this process misbehaves")
	readyTimeout := flag.Duration("ready-timeout", 5*time.Second, "ready timeout")
	hammer := flag.Duration("hammer", 10*time.Second, "hammer time")
	grace := flag.Duration("grace", time.Second, "idle grace")
	delay := flag.Duration("shutdown-delay", 0, "shutdown delay")
	master := flag.Bool("master", false, "stable-PID master mode")
	certWatch := flag.Duration("cert-watch", server.DefaultCertWatch, "how often certificate files are looked at (0: never)")
	childEnv := flag.String("child-env", "", "K=V the child of a restart gets through WithChildEnv")
	setenv := flag.String("setenv-on-hup", "", "K=V set with os.Setenv in a Before(SIGHUP) hook")
	h3 := flag.Bool("h3", false, "serve HTTP/3 beside -tls")
	acmeDomains := flag.String("acme", "", "comma-separated domains: -tls gets its certificates from the ACME CA -acme-ca instead of -cert/-key")
	acmeCA := flag.String("acme-ca", "", "ACME directory URL")
	acmeRoots := flag.String("acme-roots", "", "PEM file of roots to trust for the ACME CA")
	acmeStorage := flag.String("acme-storage", "", "ACME storage directory")
	acmeHTTP := flag.String("acme-http", "", "address of a plain HTTP listener redirecting to -tls, answering HTTP-01")
	execLoop := flag.Int("exec-loop", 0, "run `true` this many times beside the server; write the failures to exec-PID beside the mode file")
	flag.Parse()
	if *execLoop > 0 {
		go runTrue(*execLoop, filepath.Join(filepath.Dir(*modeFile), "exec-"+strconv.Itoa(os.Getpid())))
	}

	mode := ""
	if *modeFile != "" {
		b, _ := os.ReadFile(*modeFile)
		mode = strings.TrimSpace(string(b))
	}
	_, isChild := os.LookupEnv("ENDLESS_SOCKET_ORDER")
	if isChild && !testserve.Misbehave("testbin", mode) {
		switch mode {
		case "spawn-crash", "spawn-crash-holding-pipe":
			cmd := exec.Command("sleep", "60")
			if mode == "spawn-crash-holding-pipe" {
				// The subprocess gets the readiness pipe (as its fd 3)
				// and keeps it open after this process dies.
				m, err := protocol.Parse(os.Getenv(protocol.EnvOrder))
				if err != nil {
					fmt.Fprintln(os.Stderr, "testbin:", err)
					os.Exit(2)
				}
				cmd.ExtraFiles = []*os.File{os.NewFile(m.ReadyFD(), "ready")}
			}
			if err := cmd.Start(); err != nil {
				fmt.Fprintln(os.Stderr, "testbin:", err)
				os.Exit(2)
			}
			pidFile := filepath.Join(filepath.Dir(*modeFile), "grandchild.pid")
			os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
			fmt.Fprintln(os.Stderr, "testbin: crashing on purpose, leaving a subprocess")
			os.Exit(1)
		}
	}

	log := zerolog.New(os.Stderr).With().Timestamp().Logger()
	opts := []server.Option{server.WithLogger(log), server.WithPIDFile(*pidFile),
		server.WithReadyTimeout(*readyTimeout), server.WithHammerTime(*hammer), server.WithIdleGrace(*grace),
		server.WithCertWatch(*certWatch)}
	if *delay > 0 {
		opts = append(opts, server.WithShutdownDelay(*delay))
	}
	if *master {
		opts = append(opts, server.WithMaster())
	}
	if *childEnv != "" {
		opts = append(opts, server.WithChildEnv(func(env []string) []string { return append(env, *childEnv) }))
	}
	srv := server.New(opts...)
	if k, v, ok := strings.Cut(*setenv, "="); ok {
		srv.Before(syscall.SIGHUP, func() { os.Setenv(k, v) })
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.Handle("/healthz", srv.HealthHandler())
	mux.HandleFunc("/ppid", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, os.Getppid()) })
	mux.HandleFunc("/pid", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, os.Getpid()) })
	mux.HandleFunc("/gen", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, srv.Stats().Generation) })
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, version) })
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, os.Getenv(r.URL.Query().Get("k"))) })
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(srv.Stats()) })
	mux.HandleFunc("/proto", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) })
	mux.HandleFunc("/goroutines", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, runtime.NumGoroutine()) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Fprintf(w, "slow %d", os.Getpid())
	})
	mux.HandleFunc("/ws", testserve.WebSocketEcho)

	srv.Listen("api", *api, listeners.HTTP(mux))
	if *admin != "" {
		srv.Listen("admin", *admin, listeners.HTTP(mux))
	}
	if *echo != "" {
		srv.Listen("echo", *echo, listeners.TCP(testserve.EchoLines))
	}
	if *tlsAddr != "" {
		tlsOpts := []listeners.Option{listeners.TLSFiles(*cert, *key)}
		if *acmeDomains != "" {
			tlsOpts = acmeOptions(*acmeDomains, *acmeCA, *acmeRoots, *acmeStorage)
		}
		if *h3 {
			tlsOpts = append(tlsOpts, http3.Enable())
		}
		srv.Listen("secure", *tlsAddr, append(tlsOpts, listeners.HTTP(mux))...)
	}
	if *acmeHTTP != "" {
		srv.Listen("web", *acmeHTTP, acme.Redirect("secure"))
	}
	if *noteFile != "" {
		f := srv.InheritedFile("note")
		if f == nil {
			var err error
			if f, err = os.OpenFile(*noteFile, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
				fmt.Fprintln(os.Stderr, "testbin:", err)
				os.Exit(1)
			}
		}
		if err := srv.PassFile("note", f); err != nil {
			fmt.Fprintln(os.Stderr, "testbin:", err)
			os.Exit(1)
		}
		mux.HandleFunc("/note", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(f, "%d\n", os.Getpid())
			b := make([]byte, 4096)
			n, _ := f.ReadAt(b, 0)
			w.Write(b[:n])
		})
	}
	if *unixPath != "" {
		srv.Listen("local", "unix:"+*unixPath, listeners.HTTP(mux), listeners.FileMode(0o600))
	}
	if *udpAddr != "" {
		srv.Listen("dns", "udp:"+*udpAddr, listeners.Packet(testserve.UDPEcho))
	}
	if *lineAddr != "" {
		ls := &lineServer{conns: map[net.Conn]bool{}, fail: isChild && mode == "lines-fail"}
		srv.Listen("lines", *lineAddr, listeners.Serve(ls.Serve, ls.Shutdown))
	}
	if isChild && mode == "badlisten" {
		srv.Listen("extra", *api) // in use by the api listener
	}
	if err := srv.Serve(); err != nil {
		fmt.Fprintln(os.Stderr, "testbin:", err)
		os.Exit(1)
	}
}

// acmeOptions are the options of a listener with certificates from an
// ACME CA.
func acmeOptions(domains, ca, roots, storage string) []listeners.Option {
	opts := []listeners.Option{acme.Domains(strings.Split(domains, ",")...), acme.CA(ca), acme.StorageDir(storage), acme.RenewCheck(time.Second)}
	if roots != "" {
		pem, err := os.ReadFile(roots)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testbin:", err)
			os.Exit(1)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		opts = append(opts, acme.TrustRoots(pool))
	}
	return opts
}

// runTrue runs `true` n times, as a program's own code may run commands
// beside the server, and writes how many runs failed, and why, to out.
func runTrue(n int, out string) {
	failed, why := 0, ""
	for range n {
		if err := exec.Command("true").Run(); err != nil {
			failed++
			why = err.Error()
		}
	}
	os.WriteFile(out, []byte(fmt.Sprintf("%d %s", failed, why)), 0o644)
}

// lineServer is a server of the program's own, as listeners.Serve runs
// one: it answers each line with "PID line"; Shutdown stops accepting and
// waits for each connection to finish the line in hand.
type lineServer struct {
	fail     bool // serve fails at once (mode "lines-fail")
	mu       sync.Mutex
	ln       net.Listener
	conns    map[net.Conn]bool
	stopping bool
	wg       sync.WaitGroup
}

func (ls *lineServer) Serve(ln net.Listener) error {
	if ls.fail {
		return errors.New("line server: failing on purpose")
	}
	ls.mu.Lock()
	ls.ln = ln
	ls.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			ls.mu.Lock()
			stopping := ls.stopping
			ls.mu.Unlock()
			if stopping {
				return nil
			}
			return err
		}
		ls.mu.Lock()
		ls.conns[c] = true
		ls.wg.Add(1)
		ls.mu.Unlock()
		go ls.serveConn(c)
	}
}

func (ls *lineServer) serveConn(c net.Conn) {
	defer ls.wg.Done()
	defer func() {
		ls.mu.Lock()
		delete(ls.conns, c)
		ls.mu.Unlock()
		c.Close()
	}()
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		fmt.Fprintf(c, "%d %s", os.Getpid(), line)
		ls.mu.Lock()
		stopping := ls.stopping
		ls.mu.Unlock()
		if stopping {
			return
		}
	}
}

func (ls *lineServer) Shutdown(ctx context.Context) error {
	ls.mu.Lock()
	ls.stopping = true
	if ls.ln != nil {
		ls.ln.Close()
	}
	// A connection waiting for its next line is ended after a second.
	for c := range ls.conns {
		c.SetReadDeadline(time.Now().Add(time.Second))
	}
	ls.mu.Unlock()
	done := make(chan struct{})
	go func() { ls.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
