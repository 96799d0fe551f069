package server

import (
	"net"
	"net/http"
	"strconv"
)

// declNamed returns the listener declared as name. s.mu is held.
func (s *Server) declNamed(name string) (decl, bool) {
	for _, d := range s.decls {
		if d.name == name {
			return d, true
		}
	}
	return decl{}, false
}

// redirect serves a plain HTTP listener that redirects to the HTTPS
// listener named to: the certificate sources of the server answer what is
// theirs (ACME HTTP-01 challenges), every other request is sent to the
// same host and path over HTTPS, on to's port.
func (s *Server) redirect(to string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		services := s.services
		s.mu.Unlock()
		port := ""
		for _, svc := range services {
			if svc.source != nil && svc.source.HandleHTTP(w, r) {
				return
			}
			if svc.name == to {
				if a, ok := svc.ln.Addr().(*net.TCPAddr); ok && a.Port != 443 {
					port = strconv.Itoa(a.Port)
				}
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
