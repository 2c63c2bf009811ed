package server

import (
	"net"
	"net/http"
	"strings"

	"github.com/redoubt-systems/redoubt/httpapi"
)

// realIP takes the client's address from X-Forwarded-For, but only from a
// trusted proxy: the right-most address the trusted proxies did not add.
func realIP(trusted []*net.IPNet, next http.Handler) http.Handler {
	if len(trusted) == 0 {
		return next
	}
	isTrusted := func(s string) bool {
		ip := net.ParseIP(strings.TrimSpace(s))
		for _, n := range trusted {
			if ip != nil && n.Contains(ip) {
				return true
			}
		}
		return false
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err == nil && isTrusted(host) {
			if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
				hops := strings.Split(xff, ",")
				for i := len(hops) - 1; i >= 0; i-- {
					hop := strings.TrimSpace(hops[i])
					if net.ParseIP(hop) != nil && (!isTrusted(hop) || i == 0) {
						r.RemoteAddr = net.JoinHostPort(hop, "0")
						break
					}
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// MaxHeaderBytes bounds a request's line and headers. The listener reads
// up to ReadHeaderBytes (Go's own limit, past which it can only reset the
// connection), so that requests between the two get a proper answer:
// 431 and a Matrix error.
const (
	MaxHeaderBytes  = 64 << 10
	ReadHeaderBytes = 1 << 20
)

// limitHeaders answers 431 M_TOO_LARGE to a request whose line and headers
// exceed MaxHeaderBytes.
func limitHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + len(r.Host) + 12
		for k, vs := range r.Header {
			for _, v := range vs {
				n += len(k) + len(v) + 4
			}
		}
		if n > MaxHeaderBytes {
			w.Header().Set("Connection", "close")
			httpapi.WriteJSON(w, http.StatusRequestHeaderFieldsTooLarge, map[string]string{"errcode": "M_TOO_LARGE",
				"error": "the request's headers exceed 64 KiB"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hsts tells browsers to use only HTTPS for this host from now on.
func hsts(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		next.ServeHTTP(w, r)
	})
}

// health is GET /health for load balancers: the database answers.
func (s *Server) health(r *http.Request) httpapi.Response {
	var one int
	if err := s.DB.RawRead(r.Context(), "SELECT 1", &one); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]string{"status": "ok"})
}

// r0Paths serves the r0 paths of the Client-Server and media APIs, which
// older clients and bots still use (matrix-nio, Hydrogen), by their v3
// equivalents: v3 kept r0's endpoints and their meaning, as Synapse serves
// both.
func r0Paths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, api := range []string{"/_matrix/client/", "/_matrix/media/"} {
			if rest, ok := strings.CutPrefix(r.URL.Path, api+"r0/"); ok {
				r.URL.Path = api + "v3/" + rest
				if raw, ok := strings.CutPrefix(r.URL.RawPath, api+"r0/"); ok {
					r.URL.RawPath = api + "v3/" + raw
				}
				break
			}
		}
		next.ServeHTTP(w, r)
	})
}
