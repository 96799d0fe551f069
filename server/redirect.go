package server

import (
	"net"
	"net/http"
	"strconv"

	"github.com/handoff-go/handoff/internal/listen"
)

// links is what a listener learns of the others once every socket is
// chosen.
type links struct {
	// httpAddr is the address of the plain HTTP listener that redirects
	// to this one (and answers its ACME HTTP-01 challenges), or nil.
	httpAddr net.Addr
	// httpsPort is the port of the HTTPS listener this one redirects to.
	httpsPort int
	// quicPort is the UDP port of this listener's HTTP/3 companion.
	quicPort int
	// sources are the certificate sources of every listener, which a
	// redirecting listener lets answer first.
	sources []listen.CertSource
}

// linksOf works out the links of the listeners in picked.
func linksOf(picked []chosen) map[string]links {
	byName := map[string]chosen{}
	var sources []listen.CertSource
	for _, c := range picked {
		byName[c.decl.name] = c
		if src := c.decl.spec.Source; src != nil {
			sources = append(sources, src)
		}
	}
	port := func(name string) int {
		switch a := listen.AddrOf(byName[name].ln).(type) {
		case *net.TCPAddr:
			return a.Port
		case *net.UDPAddr:
			return a.Port
		}
		return 0
	}
	out := map[string]links{}
	for _, c := range picked {
		spec, name := c.decl.spec, c.decl.name
		l := out[name]
		if to := spec.Redirect; to != "" { // never name itself: to is HTTPS
			l.httpsPort, l.sources = port(to), sources
			target := out[to]
			target.httpAddr = listen.AddrOf(c.ln)
			out[to] = target
		}
		if comp := spec.Companion; comp != nil {
			l.quicPort = port(name + "-" + comp.Suffix)
		}
		out[name] = l
	}
	return out
}

// declNamed returns the listener declared as name. s.mu is held.
func (s *Server) declNamed(name string) (decl, bool) {
	for _, d := range s.decls {
		if d.name == name {
			return d, true
		}
	}
	return decl{}, false
}

// redirect serves a plain HTTP listener that redirects to an HTTPS
// listener on httpsPort: the certificate sources answer what is theirs
// (ACME HTTP-01 challenges), every other request is sent to the same host
// and path over HTTPS.
func redirect(httpsPort int, sources []listen.CertSource) http.Handler {
	port := ""
	if httpsPort != 443 {
		port = strconv.Itoa(httpsPort)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, src := range sources {
			if src.HandleHTTP(w, r) {
				return
			}
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "" {
			http.Error(w, "a Host header is needed to redirect to HTTPS", http.StatusBadRequest)
			return
		}
		if port != "" {
			host = net.JoinHostPort(host, port)
		} else if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
			host = "[" + host + "]"
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}
