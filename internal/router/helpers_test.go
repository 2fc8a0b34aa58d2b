package router

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"bluegreen/internal/freeport"
)

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	return freeport.Must(t)
}

// fleetBackend is a real HTTP server that names itself in X-Fleet and the body.
type fleetBackend struct {
	*httptest.Server
	name    string
	hits    atomic.Int64
	failing atomic.Bool // /healthz answers 500 while set
}

func newBackend(t *testing.T, name string) *fleetBackend {
	t.Helper()
	b := &fleetBackend{name: name}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			if b.failing.Load() {
				w.WriteHeader(http.StatusInternalServerError)
			}
			return
		}
		b.hits.Add(1)
		w.Header().Set("X-Fleet", name)
		io.WriteString(w, name)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *fleetBackend) addr() string { return strings.TrimPrefix(b.URL, "http://") }

// startRouter applies cfg to a new router listening on fresh loopback ports.
func startRouter(t *testing.T, cfg *Config) *Router {
	t.Helper()
	if cfg.Test == "" {
		cfg.Test = freeAddr(t)
	}
	return startRouterWith(t, cfg, Options{})
}

// startRouterWith is startRouter with options.
func startRouterWith(t *testing.T, cfg *Config, opts Options) *Router {
	t.Helper()
	if cfg.Production == "" {
		cfg.Production = freeAddr(t)
	}
	r := New(opts)
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

func twoFleets(blue, green string, wb, wg int) *Config {
	return &Config{Apps: map[string]*AppConfig{"shop": {
		Fleets: map[string]*FleetConfig{
			"blue":  {Weight: wb, Targets: []string{blue}},
			"green": {Weight: wg, Targets: []string{green}},
		},
		TestFleet: "green",
	}}}
}

// setWeights applies the running table with new weights.
func setWeights(t *testing.T, r *Router, app string, weights map[string]int) {
	t.Helper()
	cfg := r.Config()
	for f, w := range weights {
		cfg.Apps[app].Fleets[f].Weight = w
	}
	if _, err := r.Apply(cfg); err != nil {
		t.Fatal(err)
	}
}

// get fetches url with a client that reuses connections and returns the body.
func get(t *testing.T, c *http.Client, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// rawUpstream is a TCP server that reads one request head per connection and
// then hands the connection to onRequest: an upstream that misbehaves on purpose.
func rawUpstream(t *testing.T, onRequest func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	return upstreamServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err == nil {
			onRequest(c, br)
		}
	})
}

// upstreamServer is a TCP server that runs serve on each connection it accepts.
func upstreamServer(t testing.TB, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func prodURL(r *Router) string { return "http://" + r.Config().Production }
func testURL(r *Router) string { return "http://" + r.Config().Test }

var _ = fmt.Sprintf
