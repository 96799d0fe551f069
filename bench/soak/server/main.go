// Command server is the program bench/soak restarts: one process with a
// listener of every kind. "api" serves HTTP/1.1 (/, /stats, /goroutines,
// and a websocket echo on /ws that closes with 1001 on a drain), "echo"
// echoes TCP lines, "secure" serves HTTP/2 over TLS and HTTP/3 beside it
// ("secure-quic"), "local" serves the HTTP routes on a unix socket, "dns"
// echoes UDP datagrams, and "grpc" serves gRPC's health service through
// listeners.Serve.
//
// The mode file makes the next process misbehave: "crash" exits before
// serving, "hang" never becomes ready, "slow" waits two seconds first.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/handoff-go/handoff/http3"
	"github.com/handoff-go/handoff/internal/testserve"
	"github.com/handoff-go/handoff/listeners"
	"github.com/handoff-go/handoff/server"
)

func main() {
	api := flag.String("api", "", "HTTP address")
	echo := flag.String("echo", "", "TCP echo address")
	secure := flag.String("tls", "", "HTTPS (and HTTP/3) address")
	cert := flag.String("cert", "", "certificate file")
	key := flag.String("key", "", "key file")
	unixPath := flag.String("unix", "", "unix socket path")
	udp := flag.String("udp", "", "UDP echo address")
	grpcAddr := flag.String("grpc", "", "gRPC address")
	pidFile := flag.String("pidfile", "", "PID file")
	modeFile := flag.String("mode", "", "mode file")
	readyTimeout := flag.Duration("ready-timeout", 3*time.Second, "ready timeout")
	hammer := flag.Duration("hammer", 5*time.Second, "hammer time")
	flag.Parse()

	if _, child := os.LookupEnv("ENDLESS_SOCKET_ORDER"); child && *modeFile != "" {
		b, _ := os.ReadFile(*modeFile)
		testserve.Misbehave("soak server", strings.TrimSpace(string(b)))
	}

	log := zerolog.New(os.Stderr).With().Timestamp().Logger()
	srv := server.New(server.WithLogger(log), server.WithPIDFile(*pidFile),
		server.WithReadyTimeout(*readyTimeout), server.WithHammerTime(*hammer), server.WithIdleGrace(500*time.Millisecond))

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(srv.Stats()) })
	mux.HandleFunc("/goroutines", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, runtime.NumGoroutine()) })
	mux.HandleFunc("/ws", testserve.WebSocketEcho)

	gs := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)

	srv.Listen("api", *api, listeners.HTTP(mux)).
		Listen("echo", *echo, listeners.TCP(testserve.EchoLines)).
		Listen("secure", *secure, listeners.HTTP(mux), listeners.TLSFiles(*cert, *key), http3.Enable()).
		Listen("local", "unix:"+*unixPath, listeners.HTTP(mux)).
		Listen("dns", "udp:"+*udp, listeners.Packet(testserve.UDPEcho)).
		Listen("grpc", *grpcAddr, listeners.Serve(gs.Serve, func(ctx context.Context) error {
			done := make(chan struct{})
			go func() { gs.GracefulStop(); close(done) }()
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				gs.Stop()
				<-done
				return ctx.Err()
			}
		}))
	if err := srv.Serve(); err != nil {
		fmt.Fprintln(os.Stderr, "soak server:", err)
		os.Exit(1)
	}
}
