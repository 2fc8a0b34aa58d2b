package router

import (
	"bytes"
	"net/netip"
)

// What the router believes about where a request came from and what it was
// addressed to, on both ways of serving it (the event loop and the fasthttp
// path).

// forwardingLookalikes are headers that proxies and CDNs use to pass on the
// client's address or scheme. A client can send any of them; an app that
// believes one would take the client's word for its own address. Unless the
// router trusts the proxy in front of it (trust_forwarded), they are dropped,
// as X-Forwarded-For is replaced. Every X-Forwarded-* header is dropped too
// (the router writes For, Proto and Host itself).
var forwardingLookalikes = [...]string{
	"Forwarded",
	"X-Real-IP",
	"True-Client-IP",
	"X-Client-IP",
	"CF-Connecting-IP",
	"CF-Connecting-IPv6",
	"Fastly-Client-IP",
	"X-Cluster-Client-IP",
	"X-Original-Forwarded-For",
	"X-Forwarded",
	"Forwarded-For",
	"X-ProxyUser-IP",
	"X-Azure-ClientIP",
	"X-Azure-SocketIP",
	"X-Url-Scheme",
	"Front-End-Https",
}

// forwardingLookalike reports whether k (any case) names a client-address or
// scheme header the router drops from untrusted clients.
func forwardingLookalike(k []byte) bool {
	if len(k) < len("X-Real-IP") {
		return false
	}
	if len(k) > len("X-Forwarded-") && asciiEqualFold(k[:len("X-Forwarded-")], "X-Forwarded-") {
		return true
	}
	switch k[0] | 0x20 {
	case 'x', 't', 'c', 'f':
	default:
		return false
	}
	for _, name := range forwardingLookalikes {
		if asciiEqualFold(k, name) {
			return true
		}
	}
	return false
}

// routingTarget reads a request's target (RFC 9112, section 3.2) and returns
// the host to route by and the target to send upstream. A target in origin
// form ("/path?query") or asterisk form ("*") is routed by the Host header and
// sent as it is. A target in absolute form ("http://host:port/path?query") is
// routed by its authority, and the Host header is ignored, as RFC 9112
// requires; it is sent upstream in origin form, with that authority as Host
// (and X-Forwarded-Host), so that the app sees the host the router routed by.
// ok is false for any other target: another scheme, userinfo, an empty or
// malformed authority, a fragment.
func routingTarget(hostHeader, target []byte) (host, upstream []byte, ok bool) {
	if len(target) > 0 && target[0] == '/' || len(target) == 1 && target[0] == '*' {
		return hostHeader, target, true
	}
	var rest []byte
	switch {
	case len(target) > len("http://") && asciiEqualFold(target[:len("http://")], "http://"):
		rest = target[len("http://"):]
	case len(target) > len("https://") && asciiEqualFold(target[:len("https://")], "https://"):
		rest = target[len("https://"):]
	default:
		return nil, nil, false
	}
	end := bytes.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	host, path := rest[:end], rest[end:]
	if !validAuthority(host) || bytes.IndexByte(path, '#') >= 0 {
		return nil, nil, false
	}
	switch {
	case len(path) == 0:
		path = []byte("/")
	case path[0] == '?':
		path = append([]byte("/"), path...)
	}
	return host, path, true
}

// validAuthority reports whether a is host[:port] with a host name, an IPv4
// address or a bracketed IPv6 address: no userinfo, no spaces, nothing a Host
// header could not carry.
func validAuthority(a []byte) bool {
	if len(a) == 0 || len(a) > 255 {
		return false
	}
	host, port := a, []byte(nil)
	if a[0] == '[' {
		i := bytes.IndexByte(a, ']')
		if i < 2 {
			return false
		}
		if ip, err := netip.ParseAddr(string(a[1:i])); err != nil || !ip.Is6() || ip.Zone() != "" {
			return false
		}
		host, port = nil, a[i+1:]
		if len(port) > 0 {
			if port[0] != ':' {
				return false
			}
			port = port[1:]
		}
	} else if i := bytes.IndexByte(a, ':'); i >= 0 {
		host, port = a[:i], a[i+1:]
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	if a[0] != '[' && len(host) == 0 || len(port) > 5 {
		return false
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
