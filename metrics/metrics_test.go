package metrics_test

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/handoff-go/handoff/internal/testcert"
	"github.com/handoff-go/handoff/listeners"
	"github.com/handoff-go/handoff/metrics"
	"github.com/handoff-go/handoff/server"
)

// noSignals never delivers: the test drives the server by its methods.
type noSignals struct{}

func (noSignals) Notify(chan<- os.Signal, ...os.Signal) {}
func (noSignals) Stop(chan<- os.Signal)                 {}

func TestScrape(t *testing.T) {
	ca, err := testcert.NewCA("metrics test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Valid("127.0.0.1", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := leaf.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.WithSignals(noSignals{}), server.WithLogger(zerolog.Nop()),
		server.WithHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })))
	srv.Listen("api", "127.0.0.1:0").Listen("secure", "127.0.0.1:0", listeners.TLSFiles(cert, key))
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	<-srv.Serving()
	defer func() {
		srv.Shutdown(context.Background())
		<-served
	}()

	// One keep-alive connection stays open on api.
	c, err := net.Dial("tcp", srv.Addr("api").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := http.ReadResponse(bufioReader(c), nil); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(srv))
	ts := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer ts.Close()
	resp, err := http.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	got := string(body)
	for _, want := range []string{
		"handoff_generation 0",
		`handoff_restarts_total{result="failed"} 0`,
		`handoff_restarts_total{result="succeeded"} 0`,
		"handoff_draining 0",
		"handoff_drain_seconds 0",
		"handoff_requests_in_flight 0",
		"handoff_hijacked_connections 0",
		"handoff_hammered_connections_total 0",
		`handoff_open_connections{kind="http",listener="api"} 1`,
		`handoff_open_connections{kind="http",listener="secure"} 0`,
		fmt.Sprintf(`handoff_certificate_expiry_timestamp_seconds{listener="secure"} %s`, promFloat(leafExpiry(t, cert))),
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("scrape lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, `handoff_certificate_expiry_timestamp_seconds{listener="api"}`) {
		t.Error("an expiry for a listener without certificates")
	}
}

// leafExpiry is the NotAfter of the first certificate in certFile.
func leafExpiry(t *testing.T, certFile string) time.Time {
	t.Helper()
	data, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM", certFile)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return leaf.NotAfter
}

// promFloat formats a timestamp as the text exposition does.
func promFloat(t time.Time) string { return fmt.Sprintf("%g", float64(t.Unix())) }

// The metrics a collector describes, by name.
func ExampleNewCollector() {
	c := metrics.NewCollector(server.New())
	descs := make(chan *prometheus.Desc, 16)
	c.Describe(descs)
	close(descs)
	var names []string
	for d := range descs {
		s := d.String() // Desc{fqName: "handoff_…", …}
		names = append(names, s[strings.Index(s, `"`)+1:strings.Index(s, `", help`)])
	}
	sort.Strings(names)
	fmt.Println(strings.Join(names, "\n"))
	// Output:
	// handoff_certificate_expiry_timestamp_seconds
	// handoff_drain_seconds
	// handoff_draining
	// handoff_generation
	// handoff_hammered_connections_total
	// handoff_hijacked_connections
	// handoff_open_connections
	// handoff_requests_in_flight
	// handoff_restarts_total
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
