package router

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"bluegreen/internal/testwait"
)

// pathBackend answers health on one path only, like a revision that moved
// its health check.
func pathBackend(t *testing.T, name, healthPath string) (addr string, checked *atomic.Int64) {
	t.Helper()
	checked = &atomic.Int64{}
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/health") {
			if r.URL.Path != healthPath {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			checked.Add(1)
			return
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(be.Close)
	return strings.TrimPrefix(be.URL, "http://"), checked
}

// Each fleet is checked on its own revision's path: blue on /healthz while
// green is checked on /health, and neither is marked unhealthy.
func TestFleetHealthOverridesTheApps(t *testing.T) {
	blue, blueChecks := pathBackend(t, "blue", "/healthz")
	green, greenChecks := pathBackend(t, "green", "/health")
	fast := Duration(20 * time.Millisecond)
	cfg := &Config{Apps: map[string]*AppConfig{"shop": {
		Fleets: map[string]*FleetConfig{
			"blue":  {Weight: 100, Targets: []string{blue}, Health: &HealthConfig{Path: "/healthz", Interval: fast, HealthyThreshold: 1, UnhealthyThreshold: 1}},
			"green": {Weight: 0, Targets: []string{green}, Health: &HealthConfig{Path: "/health", Interval: fast, HealthyThreshold: 1, UnhealthyThreshold: 1}},
		},
		// The app's own check would fail green.
		Health: &HealthConfig{Path: "/healthz", Interval: fast, HealthyThreshold: 1, UnhealthyThreshold: 1},
	}}}
	r := startRouter(t, cfg)
	testwait.For(t, 5*time.Second, "both fleets checked on their own paths", func() bool {
		return blueChecks.Load() >= 5 && greenChecks.Load() >= 5
	})
	if !routesHealth(r, blue) || !routesHealth(r, green) {
		t.Fatalf("a fleet checked on its own path is unhealthy: blue %v, green %v", routesHealth(r, blue), routesHealth(r, green))
	}
	// Without its own section green falls back to the app's and fails.
	cfg = r.Config()
	cfg.Apps["shop"].Fleets["green"].Health = nil
	if _, err := r.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 5*time.Second, "green checked on the app's path", func() bool { return !routesHealth(r, green) })
	if !routesHealth(r, blue) {
		t.Fatal("blue turned unhealthy")
	}
}

// With roles, the preview header names the role, never the fleet's name:
// "green" reaches the candidate even when it runs in the slot named blue.
func TestPreviewHeaderNamesRoles(t *testing.T) {
	live, candidate := newBackend(t, "live"), newBackend(t, "candidate")
	cfg := &Config{Apps: map[string]*AppConfig{"shop": {
		PreviewHeader: "X-Bluegreen-Fleet",
		Fleets: map[string]*FleetConfig{
			"green": {Weight: 100, Targets: []string{live.addr()}, Role: "blue"},
			"blue":  {Weight: 0, Targets: []string{candidate.addr()}, Role: "green"},
		},
	}}}
	r := startRouter(t, cfg)
	c := &http.Client{}
	for hdr, want := range map[string]string{"green": "candidate", "blue": "live", "": "live"} {
		var h []string
		if hdr != "" {
			h = []string{"X-Bluegreen-Fleet", hdr}
		}
		if _, got := get(t, c, prodURL(r), h...); got != want {
			t.Errorf("preview %q reached %s, want %s", hdr, got, want)
		}
	}
}

// The test listener may answer other hosts than production: the candidate's
// own, while a deployment renames a host.
func TestTestHosts(t *testing.T) {
	live, candidate := newBackend(t, "live"), newBackend(t, "candidate")
	cfg := &Config{Apps: map[string]*AppConfig{"shop": {
		Hosts:     []string{"old.example.com"},
		TestHosts: []string{"new.example.com"},
		Fleets: map[string]*FleetConfig{
			"blue":  {Weight: 100, Targets: []string{live.addr()}},
			"green": {Weight: 0, Targets: []string{candidate.addr()}},
		},
		TestFleet: "green",
	}}}
	r := startRouter(t, cfg)
	status := func(url, host string) int {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(prodURL(r), "old.example.com"); got != 200 {
		t.Errorf("production, old host: %d", got)
	}
	if got := status(prodURL(r), "new.example.com"); got != 404 {
		t.Errorf("production, new host: %d, want 404", got)
	}
	if got := status(testURL(r), "new.example.com"); got != 200 {
		t.Errorf("test, new host: %d", got)
	}
	if got := status(testURL(r), "old.example.com"); got != 404 {
		t.Errorf("test, old host: %d, want 404", got)
	}
}

func TestRolesMustDiffer(t *testing.T) {
	_, err := ParseYAML([]byte(`
production: 127.0.0.1:8080
apps:
  shop:
    fleets:
      blue: {weight: 100, targets: ["127.0.0.1:9001"], role: green}
      green: {weight: 0, targets: ["127.0.0.1:9002"], role: green}
`))
	if err == nil || !strings.Contains(err.Error(), `apps.shop.fleets.green.role: fleet blue has the role "green" too`) {
		t.Fatalf("got %v", err)
	}
}

// What the last check saw is kept for people: the status and the start of
// the body, or why there was no answer.
func TestLastCheckSaysWhatItSaw(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "404 page not found\nsecond line", http.StatusNotFound)
	}))
	defer be.Close()
	answers := strings.TrimPrefix(be.URL, "http://")
	ln := freeAddr(t) // nothing listens there
	fast := Duration(20 * time.Millisecond)
	cfg := &Config{Apps: map[string]*AppConfig{"shop": {
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{answers, ln}}},
		Health: &HealthConfig{Path: "/healthz", Interval: fast, HealthyThreshold: 1, UnhealthyThreshold: 1},
	}}}
	r := startRouter(t, cfg)
	seen := func(addr string) string {
		for _, ts := range r.Stats().Apps["shop"].Fleets["blue"].Targets {
			if ts.Address == addr {
				return ts.LastCheck
			}
		}
		return ""
	}
	want := map[string]string{
		answers: "GET /healthz answered 404 Not Found: 404 page not found second line",
		ln:      "GET /healthz: connection refused (nothing listens on the port yet)",
	}
	for addr, w := range want {
		testwait.For(t, 5*time.Second, "a check of "+addr, func() bool { return seen(addr) != "" })
		if got := seen(addr); got != w {
			t.Errorf("last check of %s: %q, want %q", addr, got, w)
		}
	}
}

// A starting target is probed with a short, growing gap until it has
// passed its healthy threshold, however long the configured interval: an
// app that starts listening a moment after it was added is found healthy
// long before one interval (a minute here) has passed.
func TestStartingTargetsAreProbedSoon(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens yet: the first checks are refused
	cfg := &Config{Apps: map[string]*AppConfig{"shop": {
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{addr}}},
		Health: &HealthConfig{Path: "/healthz", Interval: Duration(time.Minute), Timeout: Duration(time.Second), HealthyThreshold: 2, UnhealthyThreshold: 1},
	}}}
	r := startRouter(t, cfg)
	target := func() TargetSnapshot {
		for _, ts := range r.Stats().Apps["shop"].Fleets["blue"].Targets {
			return ts
		}
		return TargetSnapshot{}
	}
	testwait.For(t, 5*time.Second, "the first check to be refused", func() bool { ts := target(); return ts.Checks >= 1 && !ts.Healthy })
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	go srv.Serve(ln)
	defer srv.Close()
	testwait.For(t, 10*time.Second, "the target to pass two checks, well within one interval", func() bool { ts := target(); return ts.Healthy && ts.Checks >= 3 })
}
