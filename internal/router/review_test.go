package router

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"bluegreen/internal/testwait"
)

func TestBytesAreCountedBothWays(t *testing.T) {
	be := protoBackend(t)
	r := startRouter(t, oneFleet(backendAddr(be)))
	resp, err := http.Post(prodURL(r)+"/count", "text/plain", strings.NewReader(strings.Repeat("x", 5000)))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+r.Config().Production+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.Write(ctx, websocket.MessageBinary, make([]byte, 3000))
	ws.Read(ctx)
	ws.Close(websocket.StatusNormalClosure, "")
	testwait.For(t, 5*time.Second, "the upgraded connection to end", func() bool {
		return r.Stats().Apps["shop"].Fleets["blue"].Upgraded == 0
	})
	tot := r.Stats().Apps["shop"].Fleets["blue"].Totals
	if tot.BytesIn < 8000 || tot.BytesOut < 3000 {
		t.Fatalf("bytes in %d, out %d: want at least the 5000-byte upload and 3000 bytes each way over the WebSocket", tot.BytesIn, tot.BytesOut)
	}
}

func TestFencedTestFleetIsRefused(t *testing.T) {
	blue, green := newBackend(t, "blue"), newBackend(t, "green")
	cfg := twoFleets(blue.addr(), green.addr(), 100, 0)
	cfg.Apps["shop"].Fleets["green"].Fenced = true
	r := startRouter(t, cfg)
	resp, body := get(t, &http.Client{}, testURL(r))
	if resp.StatusCode != http.StatusServiceUnavailable || body != "bluegreen: test fleet green of app shop is fenced\n" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Fatal("the refusal has no request ID")
	}
}

func TestFleetSeriesCountWhatNoTargetAnswered(t *testing.T) {
	r, admin, _, _ := adminRouter(t, "")
	cfg := r.Config()
	cfg.Apps["shop"].Fleets["blue"].Targets = []string{freeAddr(t)} // nothing listens
	if _, err := r.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, &http.Client{}, prodURL(r)); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("got %d", resp.StatusCode)
	}
	_, body := call(t, "GET", admin+"/metrics", "", "")
	if !strings.Contains(body, `bluegreen_router_fleet_requests_total{app="shop",class="5xx",fleet="blue",revision=""} 1`) {
		t.Fatalf("the 502 is missing from the fleet series:\n%s", grepLines(body, "fleet_requests"))
	}
	// A fenced fleet's targets do not count as taking requests.
	cfg = r.Config()
	cfg.Apps["shop"].Fleets["green"].Fenced = true
	if _, err := r.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	_, body = call(t, "GET", admin+"/metrics", "", "")
	if !strings.Contains(body, `bluegreen_router_target_healthy{app="shop",fleet="green",revision="",target=`) ||
		!strings.Contains(grepLines(body, `target_healthy{app="shop",fleet="green"`), "} 0") {
		t.Fatalf("fenced fleet's target still reported as taking requests:\n%s", grepLines(body, "target_healthy"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestDrainNeedsATimeout(t *testing.T) {
	_, admin, _, _ := adminRouter(t, "")
	code, body := call(t, "POST", admin+"/drain", "", `{"app":"shop","fleet":"blue"}`)
	if code != 400 || !strings.Contains(body, `\"timeout\" is required`) {
		t.Fatalf("drain without timeout: %d %s", code, body)
	}
	code, body = call(t, "POST", admin+"/drain", "", `{"app":"shop","fleet":"blue","timeout":"0s"}`)
	if code != 200 || !strings.Contains(body, `"complete": true`) {
		t.Fatalf("drain with 0s: %d %s", code, body)
	}
}

func TestStickyCookieNeedsSticky(t *testing.T) {
	_, err := ParseJSON([]byte(`{"production":"127.0.0.1:1","apps":{"a":{"sticky_cookie":"c","fleets":{"blue":{"weight":1,"targets":["127.0.0.1:2"]}}}}}`))
	if err == nil || !strings.Contains(err.Error(), "apps.a.sticky_cookie: set while sticky is false") {
		t.Fatalf("got %v", err)
	}
}

func TestFirstFailedCheckTakesANewTargetOut(t *testing.T) {
	b1, b2 := newBackend(t, "one"), newBackend(t, "two")
	b2.failing.Store(true)
	r := startRouter(t, &Config{Apps: map[string]*AppConfig{"shop": {
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{b1.addr(), b2.addr()}}},
		// thresholds of 3, and an interval long enough that only the first check runs
		Health: &HealthConfig{Path: "/healthz", Interval: Duration(time.Hour), Timeout: Duration(time.Second), UnhealthyThreshold: 3},
	}}})
	testwait.For(t, 5*time.Second, "the first check to take the failing target out", func() bool { return !routesHealth(r, b2.addr()) })
}

func TestRestartedTargetBehindPooledConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	serve := func(ln net.Listener, name string) *http.Server {
		s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) })}
		go s.Serve(ln)
		return s
	}
	s1 := serve(ln, "first")
	r := startRouter(t, oneFleet(addr))
	// Fill the pool with several kept-alive connections.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			get(t, &http.Client{}, prodURL(r))
		}()
	}
	wg.Wait()
	s1.Close()
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port taken meanwhile: %v", err)
	}
	s2 := serve(ln, "second")
	defer s2.Close()
	for i := range 20 {
		resp, body := get(t, &http.Client{}, prodURL(r))
		if resp.StatusCode != 200 || body != "second" {
			t.Fatalf("request %d after the restart: %d %q", i, resp.StatusCode, body)
		}
	}
}

func TestShutdownWaitsForUpgradedConnections(t *testing.T) {
	be := protoBackend(t)
	r := New(Options{})
	cfg := oneFleet(backendAddr(be))
	cfg.Production = freeAddr(t)
	if _, err := r.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+cfg.Production+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Shutdown(ctx) }()
	testwait.For(t, 5*time.Second, "the listener to stop accepting", func() bool {
		c, err := net.Dial("tcp", cfg.Production)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	// The open WebSocket still works while the shutdown waits for it.
	if err := ws.Write(ctx, websocket.MessageText, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.Read(ctx); err != nil || string(msg) != "still here" {
		t.Fatalf("echo during shutdown: %q %v", msg, err)
	}
	select {
	case err := <-done:
		t.Fatalf("shutdown returned (%v) while a WebSocket was open", err)
	default:
	}
	ws.Close(websocket.StatusNormalClosure, "")
	if err := <-done; err != nil {
		t.Fatalf("shutdown after the WebSocket closed: %v", err)
	}
}
