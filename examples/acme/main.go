// Command acme serves HTTPS for the domains given, with certificates from
// an ACME CA (Let's Encrypt unless -ca or -staging say otherwise), and
// redirects plain HTTP to it. A restart (kill -HUP) keeps serving the same
// certificates; renewals happen in place.
//
//	go run ./examples/acme -domain example.com -email ops@example.com -staging
//
// The CA validates the domain on ports 443 and 80 of the address its DNS
// points to. To try it on one machine, run pebble (a test CA) as the
// README shows and point -ca at it.
package main

import (
	"crypto/x509"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/handoff-go/handoff/acme"
	"github.com/handoff-go/handoff/listeners"
	"github.com/handoff-go/handoff/server"
)

func main() {
	domains := flag.String("domain", "", "domain names to serve, comma-separated (required)")
	ca := flag.String("ca", acme.LetsEncrypt, "directory URL of the ACME CA")
	staging := flag.Bool("staging", false, "use Let's Encrypt's staging CA (certificates browsers do not trust)")
	caRoots := flag.String("ca-roots", "", "PEM file of roots to trust for the CA's own HTTPS (a private CA, such as pebble)")
	email := flag.String("email", "", "contact address of the ACME account")
	storage := flag.String("storage", "", "directory for accounts, keys and certificates (default: handoff/acme in the user's cache directory)")
	httpsAddr := flag.String("https", ":443", "HTTPS listen address")
	httpAddr := flag.String("http", ":80", `plain HTTP listen address: HTTP-01 challenges and redirects ("" for none: TLS-ALPN-01 only)`)
	pidFile := flag.String("pidfile", os.TempDir()+"/acme-demo.pid", "PID file")
	flag.Parse()
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}).With().Timestamp().Logger()
	if *domains == "" {
		fmt.Fprintln(os.Stderr, "acme: -domain is required")
		flag.Usage()
		os.Exit(2)
	}

	opts := []listeners.Option{acme.Domains(strings.Split(*domains, ",")...), acme.CA(*ca)}
	if *staging {
		opts = append(opts, acme.Staging())
	}
	if *email != "" {
		opts = append(opts, acme.Email(*email))
	}
	if *storage != "" {
		opts = append(opts, acme.StorageDir(*storage))
	}
	if *caRoots != "" {
		pem, err := os.ReadFile(*caRoots)
		if err != nil {
			log.Fatal().Err(err).Msg("reading -ca-roots")
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			log.Fatal().Str("file", *caRoots).Msg("no certificate in -ca-roots")
		}
		opts = append(opts, acme.TrustRoots(pool))
	}

	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from pid %d, over %s, for %s\n", os.Getpid(), r.Proto, r.TLS.ServerName)
	})
	srv := server.New(server.WithLogger(log), server.WithPIDFile(*pidFile))
	srv.Listen("https", *httpsAddr, append(opts, listeners.HTTP(hello))...)
	if *httpAddr != "" {
		srv.Listen("http", *httpAddr, acme.Redirect("https"))
	}
	if err := srv.Serve(); err != nil {
		log.Error().Err(err).Msg("serve")
		os.Exit(1)
	}
}
