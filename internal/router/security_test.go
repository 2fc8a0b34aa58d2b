package router

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The router's refusals of what a hostile client sends: ambiguous framing on a
// connection whose upgrade was turned down, two Host headers, targets in
// absolute form, forged client-address headers, and preview requests without
// the app's secret. Each runs on both ways of serving a plain listener: the
// event loop (which hands such connections over) and the fasthttp server alone.

// serveModes are the two ways a router serves its plain listeners.
var serveModes = []struct {
	name  string
	loops bool
}{{"event loop", true}, {"fasthttp", false}}

// startRouterMode is startRouter, with the event loops switched off when loops is false.
func startRouterMode(t *testing.T, cfg *Config, loops bool) *Router {
	t.Helper()
	if cfg.Production == "" {
		cfg.Production = freeAddr(t)
	}
	if cfg.Test == "" {
		cfg.Test = freeAddr(t)
	}
	r := New(Options{})
	if !loops {
		r.loopsErr = errors.New("switched off by the test")
	}
	if _, err := r.Apply(cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Shutdown(ctx)
	})
	return r
}

// headerEcho is an upstream that answers every request with its request line
// and sorted header fields as it received them, and counts the requests whose
// path starts with /smuggled.
type headerEcho struct {
	addr     string
	smuggled atomic.Int64
	requests atomic.Int64
}

func newHeaderEcho(t *testing.T, upgradeStatus int) *headerEcho {
	t.Helper()
	e := &headerEcho{}
	e.addr = upstreamServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			e.requests.Add(1)
			if strings.HasPrefix(req.URL.Path, "/smuggled") {
				e.smuggled.Add(1)
			}
			var lines []string
			for k, vv := range req.Header {
				for _, v := range vv {
					lines = append(lines, k+": "+v)
				}
			}
			sort.Strings(lines)
			body := fmt.Sprintf("%s %s\nHost: %s\n%s\n", req.Method, req.RequestURI, req.Host, strings.Join(lines, "\n"))
			code := http.StatusOK
			if req.Header.Get("Upgrade") != "" && upgradeStatus != 0 {
				code = upgradeStatus
			}
			fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Length: %d\r\n\r\n%s", code, http.StatusText(code), len(body), body)
		}
	})
	return e
}

// rawConn dials the router's production listener.
func rawConn(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// roundTrip writes a request and reads one response from the connection.
func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, method, raw string) (int, string) {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", raw, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

// TestFramingGuardStaysOnAfterARefusedUpgrade: an upgrade the upstream turns
// down leaves the connection HTTP, so the framing guard must keep refusing
// ambiguous requests on it.
func TestFramingGuardStaysOnAfterARefusedUpgrade(t *testing.T) {
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	vectors := []struct{ name, req string }{
		{"CL.TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"TE.CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + smuggled},
		{"obs-fold TE+CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nX-A: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
	}
	upgrades := []struct{ name, req string }{
		{"websocket", "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"},
		{"upgrade header alone", "GET /u HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n"},
	}
	for _, mode := range serveModes {
		for _, status := range []int{http.StatusOK, http.StatusBadRequest} {
			up := newHeaderEcho(t, status)
			r := startRouterMode(t, oneFleet(up.addr), mode.loops)
			for _, u := range upgrades {
				for _, v := range vectors {
					t.Run(fmt.Sprintf("%s/%d/%s/%s", mode.name, status, u.name, v.name), func(t *testing.T) {
						c, br := rawConn(t, r.Config().Production)
						if code, _ := roundTrip(t, c, br, "GET", u.req); code != status && code != http.StatusOK {
							t.Fatalf("the upgrade request got %d", code)
						}
						before := up.requests.Load()
						io.WriteString(c, v.req)
						rest, _ := io.ReadAll(br)
						if !strings.HasPrefix(string(rest), "HTTP/1.1 400") {
							t.Fatalf("after a refused upgrade, %s got %q, want 400", v.name, rest)
						}
						if strings.Count(string(rest), "HTTP/1.1 ") != 1 {
							t.Fatalf("more than one answer: %q", rest)
						}
						if n := up.requests.Load() - before; n != 0 || up.smuggled.Load() != 0 {
							t.Fatalf("the upstream saw %d requests (%d smuggled)", n, up.smuggled.Load())
						}
					})
				}
			}
		}
	}
}

// TestFramingGuardSkipsBlankLinesBeforeARequest: an empty line between two
// requests (which the server skips, as RFC 9112 allows) must not blind the
// guard to the framing of the request after it.
func TestFramingGuardSkipsBlankLinesBeforeARequest(t *testing.T) {
	for _, mode := range serveModes {
		t.Run(mode.name, func(t *testing.T) {
			up := newHeaderEcho(t, 0)
			r := startRouterMode(t, oneFleet(up.addr), mode.loops)
			out := rawExchange(t, r.Config().Production,
				"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok\r\n\r\n"+
					"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"+
					"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
			if strings.Count(out, "HTTP/1.1 200") != 1 || !strings.Contains(out, "bluegreen: a request may not carry both Content-Length and Transfer-Encoding") {
				t.Fatalf("want one answer then a refusal, got %q", out)
			}
			if up.smuggled.Load() != 0 {
				t.Fatal("the smuggled request reached the upstream")
			}
		})
	}
}

// TestFramingGuardFailsClosed: once the guard cannot follow a connection's
// framing, the requests the server still reads from it are refused.
func TestFramingGuardFailsClosed(t *testing.T) {
	g := &guardConn{}
	g.scan([]byte("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"))
	if v := g.pop([]byte("GET"), []byte("/a")); v.refuse != "" {
		t.Fatalf("a plain request was refused: %+v", v)
	}
	// A request the guard never saw: refused, and so is everything after it.
	if v := g.pop([]byte("GET"), []byte("/b")); v.code != 400 {
		t.Fatalf("a request without a verdict got %+v", v)
	}
	g.scan([]byte("GET /c HTTP/1.1\r\nHost: x\r\n\r\n"))
	if v := g.pop([]byte("GET"), []byte("/c")); v.code != 400 {
		t.Fatalf("after losing track the guard let %+v through", v)
	}
	// A verdict for another request than the one served.
	g = &guardConn{}
	g.scan([]byte("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"))
	if v := g.pop([]byte("GET"), []byte("/other")); v.code != 400 {
		t.Fatalf("a mismatched verdict got %+v", v)
	}
	// A malformed chunk size.
	g = &guardConn{}
	g.scan([]byte("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"))
	g.pop([]byte("POST"), []byte("/a"))
	if v := g.pop([]byte("GET"), []byte("/next")); v.code != 400 || !g.lost {
		t.Fatalf("after a bad chunk the guard let %+v through", v)
	}
}

func TestTwoHostHeadersAreRefused(t *testing.T) {
	for _, mode := range serveModes {
		t.Run(mode.name, func(t *testing.T) {
			up := newHeaderEcho(t, 0)
			r := startRouterMode(t, oneFleet(up.addr), mode.loops)
			for _, req := range []string{
				"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
				"GET / HTTP/1.1\r\nHost: a.example\r\nhost: a.example\r\n\r\n",
				"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 2\r\nHOST: b.example\r\n\r\nok",
				"GET /first HTTP/1.1\r\nHost: a.example\r\n\r\nGET /second HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
			} {
				before := up.requests.Load()
				out := rawExchange(t, r.Config().Production, req)
				if !strings.Contains(out, "HTTP/1.1 400") || !strings.Contains(out, "bluegreen: a request may carry only one Host header") {
					t.Fatalf("%q got %q", req, out)
				}
				want := int64(strings.Count(out, "HTTP/1.1 200"))
				if n := up.requests.Load() - before; n != want {
					t.Fatalf("%q: the upstream saw %d requests, want %d", req, n, want)
				}
			}
		})
	}
}

// TestAbsoluteFormRoutesByItsAuthority: a target in absolute form is routed by
// its authority, and the app sees that same host in Host and X-Forwarded-Host,
// with the target in origin form.
func TestAbsoluteFormRoutesByItsAuthority(t *testing.T) {
	for _, mode := range serveModes {
		t.Run(mode.name, func(t *testing.T) {
			shop, admin := newHeaderEcho(t, 0), newHeaderEcho(t, 0)
			cfg := &Config{Apps: map[string]*AppConfig{
				"shop":  {Hosts: []string{"shop.example"}, Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{shop.addr}}}},
				"admin": {Hosts: []string{"admin.example"}, Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{admin.addr}}}},
			}}
			r := startRouterMode(t, cfg, mode.loops)
			for _, tc := range []struct{ req, method, wantLine, wantHost string }{
				{"GET http://admin.example/x?y=1 HTTP/1.1\r\nHost: shop.example\r\n\r\n", "GET", "GET /x?y=1", "admin.example"},
				{"GET HTTP://Admin.Example:8080 HTTP/1.1\r\nHost: shop.example\r\n\r\n", "GET", "GET /", "Admin.Example:8080"},
				{"POST https://admin.example?q HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 2\r\n\r\nok", "POST", "POST /?q", "admin.example"},
				{"GET http://shop.example/ HTTP/1.1\r\n\r\n", "GET", "GET /", "shop.example"},
			} {
				c, br := rawConn(t, r.Config().Production)
				code, body := roundTrip(t, c, br, tc.method, tc.req)
				if code != 200 {
					t.Fatalf("%q got %d %q", tc.req, code, body)
				}
				for _, want := range []string{tc.wantLine + "\n", "Host: " + tc.wantHost + "\n", "X-Forwarded-Host: " + tc.wantHost + "\n"} {
					if !strings.Contains(body, want) {
						t.Errorf("%q: the upstream did not get %q:\n%s", tc.req, want, body)
					}
				}
				if strings.Contains(body, "shop.example") != (tc.wantHost == "shop.example") {
					t.Errorf("%q: the Host header the target replaced reached the upstream:\n%s", tc.req, body)
				}
			}
			if shop.requests.Load() != 1 || admin.requests.Load() != 3 {
				t.Fatalf("shop saw %d requests, admin %d; want 1 and 3", shop.requests.Load(), admin.requests.Load())
			}
			for _, bad := range []string{
				"GET ftp://admin.example/ HTTP/1.1\r\nHost: shop.example\r\n\r\n",
				"GET http://user@admin.example/ HTTP/1.1\r\nHost: shop.example\r\n\r\n",
				"GET http:///x HTTP/1.1\r\nHost: shop.example\r\n\r\n",
				"GET admin.example/x HTTP/1.1\r\nHost: shop.example\r\n\r\n",
				"GET http://admin.example/#f HTTP/1.1\r\nHost: shop.example\r\n\r\n",
			} {
				out := rawExchange(t, r.Config().Production, bad)
				if !strings.HasPrefix(out, "HTTP/1.1 400") {
					t.Errorf("%q got %q, want 400", bad, out)
				}
			}
			if n := shop.requests.Load() + admin.requests.Load(); n != 4 {
				t.Fatalf("a refused target reached an upstream (%d requests)", n)
			}
		})
	}
}

var lookalikeHeaders = []string{
	"X-Real-IP", "True-Client-IP", "X-Client-IP", "CF-Connecting-IP", "Fastly-Client-IP",
	"X-Cluster-Client-IP", "X-Original-Forwarded-For", "Forwarded", "X-Forwarded-Port",
	"X-Forwarded-Ssl", "X-Forwarded-Scheme", "X-Url-Scheme", "Front-End-Https",
}

// TestClientAddressLookalikesAreDropped: headers that name the client's address
// or scheme are treated like X-Forwarded-For: dropped unless the router trusts
// the proxy in front of it. X-Real-IP is set to the peer's address.
func TestClientAddressLookalikesAreDropped(t *testing.T) {
	for _, mode := range serveModes {
		t.Run(mode.name, func(t *testing.T) {
			up := newHeaderEcho(t, 0)
			r := startRouterMode(t, oneFleet(up.addr), mode.loops)
			var forged strings.Builder
			for _, h := range lookalikeHeaders {
				forged.WriteString(h + ": 6.6.6.6\r\n")
			}
			for _, method := range []string{"GET", "POST"} {
				req := method + " / HTTP/1.1\r\nHost: x\r\n" + forged.String() + "Content-Length: 0\r\n\r\n"
				if method == "GET" {
					req = "GET / HTTP/1.1\r\nHost: x\r\n" + forged.String() + "\r\n"
				}
				c, br := rawConn(t, r.Config().Production)
				_, body := roundTrip(t, c, br, method, req)
				if strings.Contains(body, "6.6.6.6") {
					t.Errorf("%s: a forged client address reached the upstream:\n%s", method, body)
				}
				if !strings.Contains(body, "X-Real-Ip: 127.0.0.1\n") {
					t.Errorf("%s: X-Real-IP is not the peer's address:\n%s", method, body)
				}
			}
			cfg := r.Config()
			cfg.TrustForwarded = true
			if _, err := r.Apply(cfg); err != nil {
				t.Fatal(err)
			}
			c, br := rawConn(t, r.Config().Production)
			_, body := roundTrip(t, c, br, "GET", "GET / HTTP/1.1\r\nHost: x\r\n"+forged.String()+"\r\n")
			if n := strings.Count(body, ": 6.6.6.6\n"); n != len(lookalikeHeaders) {
				t.Errorf("trusted: %d of %d headers passed on unchanged:\n%s", n, len(lookalikeHeaders), body)
			}
			if strings.Contains(body, "X-Real-Ip: 127.0.0.1") {
				t.Errorf("trusted: the proxy's X-Real-IP was replaced:\n%s", body)
			}
		})
	}
}

func TestForwardingLookalike(t *testing.T) {
	for _, h := range append(lookalikeHeaders, "x-real-ip", "X-FORWARDED-PREFIX", "Cf-Connecting-Ipv6", "X-Azure-Clientip") {
		if !forwardingLookalike([]byte(h)) {
			t.Errorf("%s is not dropped", h)
		}
	}
	for _, h := range []string{"X-Forwarded", "X-Request-Id", "Cookie", "X-Real", "Content-Type", "Fastly-Debug", "X-Forwarded-"} {
		if forwardingLookalike([]byte(h)) != (h == "X-Forwarded") {
			t.Errorf("%s: forwardingLookalike = %v", h, !(h == "X-Forwarded"))
		}
	}
}

func TestRoutingTarget(t *testing.T) {
	for _, tc := range []struct {
		target, host, upstream string
		ok                     bool
	}{
		{"/a?b", "hdr", "/a?b", true},
		{"*", "hdr", "*", true},
		{"http://x.example", "x.example", "/", true},
		{"http://x.example:81/p", "x.example:81", "/p", true},
		{"https://[::1]:8443/p?q", "[::1]:8443", "/p?q", true},
		{"http://x.example?q=1", "x.example", "/?q=1", true},
		{"http://", "", "", false},
		{"http://a@b/", "", "", false},
		{"http://a b/", "", "", false},
		{"http://a:x/", "", "", false},
		{"http://[zz]/", "", "", false},
		{"http://a/#f", "", "", false},
		{"ws://a/", "", "", false},
		{"a.example:80", "", "", false},
		{"", "", "", false},
	} {
		host, up, ok := routingTarget([]byte("hdr"), []byte(tc.target))
		if ok != tc.ok || ok && (string(host) != tc.host || string(up) != tc.upstream) {
			t.Errorf("%q: got %q %q %v, want %q %q %v", tc.target, host, up, ok, tc.host, tc.upstream, tc.ok)
		}
	}
}

const testPreviewSecret = "s3cret-preview-0123456789"

// TestPreviewSecret: with a preview secret, the preview header selects a fleet
// only when it carries the secret; otherwise the request is routed as if it
// had no preview header. The header, secret and all, never reaches the app.
func TestPreviewSecret(t *testing.T) {
	for _, mode := range serveModes {
		t.Run(mode.name, func(t *testing.T) {
			blue, green := newHeaderEcho(t, 0), newHeaderEcho(t, 0)
			cfg := twoFleets(blue.addr, green.addr, 100, 0)
			cfg.Apps["shop"].PreviewHeader = "X-Bluegreen-Fleet"
			cfg.Apps["shop"].PreviewSecret = testPreviewSecret
			r := startRouterMode(t, cfg, mode.loops)
			for _, tc := range []struct {
				value string
				green bool
			}{
				{"green", false},
				{"green; secret=wrong-secret-0123456789", false},
				{"green; secret=" + testPreviewSecret[:len(testPreviewSecret)-1], false},
				{"green; secret=" + testPreviewSecret + "x", false},
				{"green;secret=", false},
				{"green; secret=" + testPreviewSecret, true},
				{"green;secret=" + testPreviewSecret, true},
				{"purple; secret=" + testPreviewSecret, false},
			} {
				for _, method := range []string{"GET", "POST"} {
					b, g := blue.requests.Load(), green.requests.Load()
					req := method + " / HTTP/1.1\r\nHost: x\r\nX-Bluegreen-Fleet: " + tc.value + "\r\nContent-Length: 0\r\n\r\n"
					if method == "GET" {
						req = "GET / HTTP/1.1\r\nHost: x\r\nX-Bluegreen-Fleet: " + tc.value + "\r\n\r\n"
					}
					c, br := rawConn(t, r.Config().Production)
					code, body := roundTrip(t, c, br, method, req)
					gotGreen := green.requests.Load() > g
					if code != 200 || gotGreen != tc.green || gotGreen == (blue.requests.Load() > b) {
						t.Errorf("%s %q: %d, served by green %v, want %v", method, tc.value, code, gotGreen, tc.green)
					}
					if strings.Contains(body, "X-Bluegreen-Fleet") || strings.Contains(body, "secret") {
						t.Errorf("%s %q: the preview header reached the app:\n%s", method, tc.value, body)
					}
				}
			}
		})
	}
}

func TestPreviewSecretIsChecked(t *testing.T) {
	for _, tc := range []struct {
		header, secret, want string
	}{
		{"", testPreviewSecret, "apps.shop.preview_secret: set without preview_header"},
		{"X-Bluegreen-Fleet", "short", "apps.shop.preview_secret: must be 16 to 256 characters of A-Z, a-z, 0-9 and . _ ~ + / = - (it has 5 characters)"},
		{"X-Bluegreen-Fleet", "has a space in it, sixteen+", "apps.shop.preview_secret: must be 16 to 256"},
		{"X-Bluegreen-Fleet", strings.Repeat("a", 257), "(it has 257 characters)"},
	} {
		cfg := twoFleets("127.0.0.1:1", "127.0.0.1:2", 100, 0)
		cfg.Production = "127.0.0.1:3"
		cfg.Apps["shop"].PreviewHeader = tc.header
		cfg.Apps["shop"].PreviewSecret = tc.secret
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("header %q secret %q: %v, want %q", tc.header, tc.secret, err, tc.want)
		}
		if err != nil && len(tc.secret) > 5 && strings.Contains(err.Error(), tc.secret) {
			t.Errorf("the error quotes the secret: %v", err)
		}
	}
}

// FuzzRoutingTarget: whatever the target, routingTarget does not panic; the
// scheme and authority of what it accepts in absolute form, net/url reads with
// the same host, an http or https scheme and no userinfo (the path is passed on
// byte for byte, as in origin form), and what it sends upstream is in origin form.
func FuzzRoutingTarget(f *testing.F) {
	for _, s := range []string{"/a?b", "*", "http://a.example/x?y", "HTTPS://[::1]:8443", "http://a@b/", "http://a.example?q",
		"ftp://x/", "http:///", "a:80", "http://a:b:c/", "http://[::1/", "http://a/#x", "//a/b"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, target []byte) {
		host, up, ok := routingTarget([]byte("hdr"), target)
		if !ok {
			return
		}
		if string(host) == "hdr" {
			if string(up) != string(target) {
				t.Fatalf("origin-form %q sent upstream as %q", target, up)
			}
			return
		}
		if len(up) == 0 || up[0] != '/' {
			t.Fatalf("%q sent upstream as %q, not in origin form", target, up)
		}
		authority := string(target[:strings.Index(string(target), "://")+3]) + string(host)
		u, err := url.Parse(authority)
		if err != nil {
			t.Fatalf("accepted %q, which net/url refuses: %v", target, err)
		}
		if !strings.EqualFold(u.Host, string(host)) || u.User != nil || (u.Scheme != "http" && u.Scheme != "https") {
			t.Fatalf("%q: routed by %q, net/url reads host %q scheme %q user %v", target, host, u.Host, u.Scheme, u.User)
		}
	})
}

// TestRefusalWithABodyClosesTheConnection: a request refused before its body
// is read (here a streamed one, over 64 KiB) closes the connection, so that
// the body is never read as requests; a bodiless refusal keeps it open.
func TestRefusalWithABodyClosesTheConnection(t *testing.T) {
	for _, mode := range serveModes {
		t.Run(mode.name, func(t *testing.T) {
			up := newHeaderEcho(t, 0)
			cfg := oneFleet(up.addr)
			cfg.Apps["shop"].Hosts = []string{"shop.example"}
			r := startRouterMode(t, cfg, mode.loops)
			c, br := rawConn(t, r.Config().Production)
			if code, _ := roundTrip(t, c, br, "GET", "GET / HTTP/1.1\r\nHost: other.example\r\n\r\n"); code != 404 {
				t.Fatalf("unknown host: %d", code)
			}
			if code, _ := roundTrip(t, c, br, "GET", "GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n"); code != 200 {
				t.Fatalf("after a bodiless refusal the connection does not serve: %d", code)
			}
			smuggled := "GET /smuggled HTTP/1.1\r\nHost: shop.example\r\n\r\n"
			body := smuggled + strings.Repeat("x", 100<<10-len(smuggled))
			out := rawExchange(t, r.Config().Production,
				fmt.Sprintf("POST / HTTP/1.1\r\nHost: other.example\r\nContent-Length: %d\r\n\r\n", len(body))+body)
			if !strings.HasPrefix(out, "HTTP/1.1 404") || strings.Count(out, "HTTP/1.1 ") != 1 || up.smuggled.Load() != 0 {
				t.Fatalf("a refused upload: %.300q, %d smuggled", out, up.smuggled.Load())
			}
		})
	}
}
