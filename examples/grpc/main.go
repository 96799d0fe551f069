// Command grpc serves gRPC through handoff: the standard health service and
// a server-streaming method, Count, on one listener. A restart hands the
// socket to the new process; the old one stops with GracefulStop, so every
// RPC in flight, streams included, finishes where it started, and Stop at
// hammer time.
//
//	go run ./examples/grpc -addr 127.0.0.1:9000     # from examples/grpc: go run .
//	kill -HUP $(cat /tmp/grpc-demo.pid)
//
// Count needs no generated code: its messages are JSON, through a codec of
// this program's own (see count.go).
package main

import (
	"context"
	"flag"
	"os"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/handoff-go/handoff/listeners"
	"github.com/handoff-go/handoff/server"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	pidFile := flag.String("pidfile", os.TempDir()+"/grpc-demo.pid", "PID file")
	hammer := flag.Duration("hammer", 30*time.Second, "hammer time")
	flag.Parse()
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}).With().Timestamp().Logger()

	gs := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	registerCounter(gs)

	srv := server.New(server.WithLogger(log), server.WithPIDFile(*pidFile), server.WithHammerTime(*hammer))
	srv.RegisterOnShutdown(hs.Shutdown) // health checks answer NOT_SERVING while draining
	srv.Listen("grpc", *addr, listeners.Serve(gs.Serve, func(ctx context.Context) error {
		return gracefulStop(ctx, gs)
	}))
	if err := srv.Serve(); err != nil {
		log.Error().Err(err).Msg("serve")
		os.Exit(1)
	}
}

// gracefulStop stops gs gracefully, and at once when ctx is done (hammer
// time).
func gracefulStop(ctx context.Context, gs *grpc.Server) error {
	done := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		gs.Stop()
		<-done
		return ctx.Err()
	}
}
