package router

import (
	"net"
	"net/http"
	"strings"
)

// The admin API changes what the router does with live traffic (a drain fences
// a fleet), so it must answer only its operators. Its TCP listener is on a
// loopback address, but a web browser on the same machine reaches loopback
// too: a page from any site can send it a POST (a "simple" cross-origin
// request needs no preflight, and the router reads the body whatever its
// Content-Type), and a site whose name it re-points at 127.0.0.1 (DNS
// rebinding) can even read the answers. Two checks close both ways, before
// the token is looked at:
//
//   - on a TCP listener, the Host header must name a loopback address or
//     localhost: a rebound name (Host: evil.example:9100) is refused;
//   - on any listener, a request that a browser marks as sent by a page of
//     another origin (Origin of another origin, Sec-Fetch-Site cross-site or
//     same-site; a page on 127.0.0.1:8000 is same-site to 127.0.0.1:9100) is
//     refused, whatever its method.
//
// Command-line clients (curl, the control plane's client) send neither
// header and are not affected.

// loopbackHostOnly refuses requests whose Host is not a loopback address or localhost.
func loopbackHostOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !loopbackHost(req.Host) {
			writeJSON(w, http.StatusForbidden, apiError{"forbidden", "admin API: Host " + quoteShort(req.Host) +
				" is not a loopback address; call it as 127.0.0.1, [::1] or localhost"})
			return
		}
		next.ServeHTTP(w, req)
	})
}

// loopbackHost reports whether a Host header value names this machine by a
// loopback address or "localhost". An empty Host (HTTP/1.0) passes: browsers
// always send one.
func loopbackHost(host string) bool {
	if host == "" {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// refuseBrowsers refuses requests that a web page of another origin made.
func refuseBrowsers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if why := crossOrigin(req); why != "" {
			writeJSON(w, http.StatusForbidden, apiError{"forbidden", "admin API: refusing a request sent by a web page (" + why +
				"); call the admin API from a command line or a program"})
			return
		}
		next.ServeHTTP(w, req)
	})
}

// crossOrigin says why req looks sent by a page of another origin, or "".
func crossOrigin(req *http.Request) string {
	switch site := req.Header.Get("Sec-Fetch-Site"); site {
	case "", "none", "same-origin":
	default:
		return "Sec-Fetch-Site: " + quoteShort(site)
	}
	if origin, ok := req.Header["Origin"]; ok {
		if len(origin) != 1 || !strings.EqualFold(origin[0], "http://"+req.Host) {
			return "Origin: " + quoteShort(strings.Join(origin, ", "))
		}
	}
	return ""
}

// quoteShort quotes a client-supplied value for an error message, cut short.
func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < ' ' || r == '"' || r == 0x7f {
			return '?'
		}
		return r
	}, s) + `"`
}
