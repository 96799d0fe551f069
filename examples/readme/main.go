// Command readme is the code of the README, whole: each Go block of the
// README stands in this file between a "README:" comment and "README:
// end", and a test (readme_test.go at the repository root) checks that
// they stay the same, so every block compiles as written.
package main

import (
	"context"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/handoff-go/handoff/acme"
	"github.com/handoff-go/handoff/http3"
	"github.com/handoff-go/handoff/listeners"
	"github.com/handoff-go/handoff/metrics"
	"github.com/handoff-go/handoff/server"
)

func main() {
	zl := zerolog.New(os.Stderr).With().Timestamp().Logger()
	mux, adminMux := http.NewServeMux(), http.NewServeMux()

	// README: use
	srv := server.New(server.WithHandler(mux), server.WithLogger(zl),
		server.WithReadyTimeout(30*time.Second), server.WithHammerTime(60*time.Second),
		server.WithPIDFile("/run/app.pid"))
	srv.Listen("api", ":8080").
		Listen("admin", "127.0.0.1:9090", listeners.HTTP(adminMux)).
		Listen("echo", ":7000", listeners.TCP(echo))
	if err := srv.Serve(); err != nil { // returns once drained; nil when stopped as asked
		log.Fatal(err)
	}
	// README: end
}

// README: echo
// echo sends back what it reads. When the server drains, ctx is done: it
// stops reading, so an idle client does not hold the drain until hammer
// time.
func echo(ctx context.Context, c net.Conn) {
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	io.Copy(c, c)
}

// README: end

func tls(srv *server.Server, api, h http.Handler) {
	// README: tls
	srv.Listen("api", ":8443", listeners.HTTP(api),
		listeners.TLSFiles("api.crt", "api.key"), // several pairs: chosen by SNI
		listeners.TLSFiles("other.crt", "other.key"),
		listeners.ClientCAs("clients.pem")) // optional mutual TLS
	srv.Listen("grpc", ":8081", listeners.HTTP(h), listeners.H2C()) // cleartext HTTP/2
	// README: end
}

func automaticHTTPS(srv *server.Server, h http.Handler) {
	// README: acme
	srv.Listen("https", ":443", listeners.HTTP(h),
		acme.Domains("example.com", "www.example.com"), acme.Email("ops@example.com")).
		Listen("http", ":80", acme.Redirect("https")) // HTTP-01, and http:// -> https://
	// README: end
}

func quic(srv *server.Server, h http.Handler) {
	// README: http3
	srv.Listen("api", ":443", listeners.HTTP(h), listeners.TLSFiles("api.crt", "api.key"),
		http3.Enable()) // HTTP/3 on UDP :443 too, across restarts
	// README: end
}

func adopt(ctx context.Context, h, adminMux *http.ServeMux) error {
	// README: adopt
	srv := server.New(server.WithHandler(h),
		server.WithSlog(slog.Default()), // or WithLogger(zerolog.Logger), the default
		server.WithChildEnv(func(env []string) []string { // what a restart's new process gets
			return append(env, "APP_RESTARTED=1")
		}))
	prometheus.MustRegister(metrics.NewCollector(srv))
	adminMux.Handle("/metrics", promhttp.Handler())
	adminMux.Handle("/healthz", srv.HealthHandler())
	srv.Listen("api", ":8080").Listen("admin", "127.0.0.1:9090", listeners.HTTP(adminMux))
	return srv.ServeContext(ctx) // cancelling ctx stops it as SIGTERM does
	// README: end
}

func kinds(srv *server.Server, h http.Handler, dns func(context.Context, net.PacketConn),
	gs interface {
		Serve(net.Listener) error
		GracefulStop()
	}, helper *os.File) {
	// README: kinds
	srv.Listen("admin", "unix:/run/app/admin.sock", listeners.HTTP(h), listeners.FileMode(0o660)).
		Listen("dns", "udp:0.0.0.0:5353", listeners.Packet(dns)).
		Listen("grpc", ":9000", listeners.Serve(gs.Serve, func(ctx context.Context) error {
			gs.GracefulStop() // examples/grpc also calls Stop when ctx ends (hammer time)
			return nil
		}))
	if f := srv.InheritedFile("helper"); f != nil { // a restart's new process
		helper = f
	}
	srv.PassFile("helper", helper) // handed to every new process by name
	// README: end
}

var _, _, _, _, _ = tls, automaticHTTPS, quic, adopt, kinds
