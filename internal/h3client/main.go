// Command h3client sends the HTTP/3 requests of the end-to-end tests that
// carry 0-RTT data, from a process of its own that the tests build without
// the race detector. quic-go's client stores the server's transport
// parameters on its connection's goroutine while the caller may be opening a
// 0-RTT stream that reads them (quic-go issue 4303). That race is the
// client's alone, but it would fail a test process built with -race; the
// server under test keeps the race detector.
//
// Each line of standard input is a request: "get URL" over a new connection,
// or "early URL" over a new connection that sends it as 0-RTT data when a
// session ticket allows it. Every connection shares one TLS session cache,
// so a ticket from one request serves the next. Each request is answered by
// one JSON line on standard output; the command ends at the end of input.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	qhttp3 "github.com/quic-go/quic-go/http3"
)

// result is what one request got.
type result struct {
	Status   int    `json:"status"`
	Proto    string `json:"proto"`
	Body     string `json:"body"`
	Resumed  bool   `json:"resumed"`   // the TLS session resumed from a ticket
	Used0RTT bool   `json:"used_0rtt"` // the server accepted 0-RTT data
	Err      string `json:"error,omitempty"`
}

func main() {
	rootsFile := flag.String("roots", "", "PEM file of the CAs to trust")
	serverName := flag.String("server-name", "127.0.0.1", "TLS server name")
	timeout := flag.Duration("timeout", 10*time.Second, "time limit of each request")
	flag.Parse()
	pem, err := os.ReadFile(*rootsFile)
	if err != nil {
		fail(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		fail(fmt.Errorf("%s holds no PEM certificate", *rootsFile))
	}
	tlsConf := &tls.Config{RootCAs: roots, ServerName: *serverName, ClientSessionCache: tls.NewLRUClientSessionCache(8)}
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		verb, url, ok := strings.Cut(strings.TrimSpace(in.Text()), " ")
		var r result
		switch {
		case !ok || (verb != "get" && verb != "early"):
			r.Err = fmt.Sprintf("cannot read %q: want \"get URL\" or \"early URL\"", in.Text())
		default:
			r = request(tlsConf, verb == "early", url, *timeout)
		}
		if err := out.Encode(r); err != nil {
			fail(err)
		}
	}
	if err := in.Err(); err != nil {
		fail(err)
	}
}

// request sends one GET over a connection of its own.
func request(tlsConf *tls.Config, early bool, url string, timeout time.Duration) result {
	var conn atomic.Pointer[quic.Conn]
	tr := &qhttp3.Transport{
		TLSClientConfig: tlsConf,
		Dial: func(ctx context.Context, addr string, tlsConf *tls.Config, conf *quic.Config) (*quic.Conn, error) {
			c, err := quic.DialAddrEarly(ctx, addr, tlsConf, conf)
			conn.Store(c)
			return c, err
		},
	}
	defer tr.Close()
	method := http.MethodGet
	if early {
		method = qhttp3.MethodGet0RTT
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return result{Err: err.Error()}
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return result{Err: err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r := result{Status: resp.StatusCode, Proto: resp.Proto, Body: string(b)}
	if err != nil {
		r.Err = err.Error()
	}
	if resp.TLS != nil {
		r.Resumed = resp.TLS.DidResume
	}
	if c := conn.Load(); c != nil {
		r.Used0RTT = c.ConnectionState().Used0RTT
	} else if r.Err == "" {
		r.Err = "answered without a connection of its own"
	}
	return r
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "h3client:", err)
	os.Exit(2)
}
