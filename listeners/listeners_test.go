package listeners

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/handoff-go/handoff/internal/listen"
)

func TestBuild(t *testing.T) {
	h := http.NotFoundHandler()
	tcp := func(context.Context, net.Conn) {}
	withCert := &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil }}
	tests := []struct {
		name    string
		opts    []Option
		kind    listen.Kind
		wantErr string
	}{
		{"default is http", nil, listen.KindHTTP, ""},
		{"http", []Option{HTTP(h)}, listen.KindHTTP, ""},
		{"tcp", []Option{TCP(tcp)}, listen.KindTCP, ""},
		{"tls files", []Option{HTTP(h), TLSFiles("c", "k")}, listen.KindHTTP, ""},
		{"tcp over tls", []Option{TCP(tcp), TLS(withCert)}, listen.KindTCP, ""},
		{"tls without a certificate", []Option{TLS(&tls.Config{})}, 0, "no certificate"},
		{"h2c", []Option{H2C()}, listen.KindHTTP, ""},
		{"two kinds", []Option{HTTP(h), TCP(tcp)}, 0, "both http and tcp"},
		{"nil tcp", []Option{TCP(nil)}, 0, "TCP handler is nil"},
		{"nil tls", []Option{TLS(nil)}, 0, "TLS config is nil"},
		{"empty cert", []Option{TLSFiles("", "k")}, 0, "needs a certificate file"},
		{"tls and files", []Option{TLS(withCert), TLSFiles("c", "k")}, 0, "exclusive"},
		{"client CAs alone", []Option{ClientCAs("ca.pem")}, 0, "needs TLSFiles"},
		{"h2c with tls", []Option{H2C(), TLSFiles("c", "k")}, 0, "cleartext"},
		{"h2c on tcp", []Option{TCP(tcp), H2C()}, 0, "cleartext"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := listen.Build(tt.opts...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Build = %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Kind != tt.kind {
				t.Fatalf("kind %v, want %v", s.Kind, tt.kind)
			}
		})
	}
}
