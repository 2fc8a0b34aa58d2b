package router

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"bluegreen/internal/testwait"
)

// session is one browser: its own cookie jar.
func session(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar}
}

func TestStickySessionsAcrossShift(t *testing.T) {
	blue, green := newBackend(t, "blue"), newBackend(t, "green")
	cfg := twoFleets(blue.addr(), green.addr(), 90, 10)
	cfg.Apps["shop"].Sticky = true
	r := startRouter(t, cfg)

	// 10 %: 200 sessions arrive; each is pinned where it first landed.
	sessions := make([]*http.Client, 200)
	pinned := make([]string, len(sessions))
	newGreen := 0
	for i := range sessions {
		sessions[i] = session(t)
		_, pinned[i] = get(t, sessions[i], prodURL(r))
		if pinned[i] == "green" {
			newGreen++
		}
	}
	if newGreen < 15 || newGreen > 25 {
		t.Fatalf("at 10%% green, %d of 200 new sessions went green, want 20±5", newGreen)
	}
	checkPinned := func(stage string) {
		for i, c := range sessions {
			for range 3 {
				if _, got := get(t, c, prodURL(r)); got != pinned[i] {
					t.Fatalf("%s: session %d pinned to %s was served by %s", stage, i, pinned[i], got)
				}
			}
		}
	}
	checkPinned("10%")

	// 50 %: old sessions keep their fleet; new sessions follow the weights.
	setWeights(t, r, "shop", map[string]int{"blue": 50, "green": 50})
	checkPinned("50%")
	newGreen = 0
	for range 200 {
		if _, got := get(t, session(t), prodURL(r)); got == "green" {
			newGreen++
		}
	}
	if newGreen < 90 || newGreen > 110 {
		t.Fatalf("at 50%%, %d of 200 new sessions went green, want 100±10: stickiness drifts the split", newGreen)
	}

	// 100 %: blue has no weight, so its sessions are re-pinned to green, once.
	setWeights(t, r, "shop", map[string]int{"blue": 0, "green": 100})
	for i := range pinned {
		pinned[i] = "green"
	}
	checkPinned("100%")
}

func TestStickyClientRepinnedWhenFleetFenced(t *testing.T) {
	blue, green := newBackend(t, "blue"), newBackend(t, "green")
	cfg := twoFleets(blue.addr(), green.addr(), 50, 50)
	cfg.Apps["shop"].Sticky = true
	r := startRouter(t, cfg)
	var c *http.Client
	for {
		c = session(t)
		if _, got := get(t, c, prodURL(r)); got == "blue" {
			break
		}
	}
	cfg = r.Config()
	cfg.Apps["shop"].Fleets["blue"].Fenced = true
	if _, err := r.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	resp, got := get(t, c, prodURL(r))
	if got != "green" || !strings.Contains(resp.Header.Get("Set-Cookie"), "bg_shop=green") {
		t.Fatalf("after fencing blue: served by %s, Set-Cookie %q", got, resp.Header.Get("Set-Cookie"))
	}
}

func TestPreviewHeader(t *testing.T) {
	blue, green := newBackend(t, "blue"), newBackend(t, "green")
	cfg := twoFleets(blue.addr(), green.addr(), 100, 0)
	cfg.Apps["shop"].PreviewHeader = "X-Bluegreen-Fleet"
	r := startRouter(t, cfg)
	c := &http.Client{}
	if _, got := get(t, c, prodURL(r), "X-Bluegreen-Fleet", "green"); got != "green" {
		t.Fatalf("preview green got %s", got)
	}
	if _, got := get(t, c, prodURL(r)); got != "blue" {
		t.Fatalf("no header got %s", got)
	}
	if _, got := get(t, c, prodURL(r), "X-Bluegreen-Fleet", "purple"); got != "blue" {
		t.Fatalf("unknown fleet got %s", got)
	}

	// Off unless configured.
	cfg = r.Config()
	cfg.Apps["shop"].PreviewHeader = ""
	if _, err := r.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if _, got := get(t, c, prodURL(r), "X-Bluegreen-Fleet", "green"); got != "blue" {
		t.Fatalf("preview header honoured while not configured: got %s", got)
	}
}

func routesHealth(r *Router, addr string) (healthy bool) {
	for _, ts := range r.Routes().Targets {
		if ts.Address == addr {
			return ts.Healthy
		}
	}
	return false
}

func TestHealthTransitions(t *testing.T) {
	b1, b2 := newBackend(t, "one"), newBackend(t, "two")
	cfg := &Config{Apps: map[string]*AppConfig{"shop": {
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{b1.addr(), b2.addr()}}},
		Health: &HealthConfig{Path: "/healthz", Interval: Duration(20 * time.Millisecond), HealthyThreshold: 2, UnhealthyThreshold: 2},
	}}}
	r := startRouter(t, cfg)
	c := &http.Client{}

	b2.failing.Store(true)
	testwait.For(t, 5*time.Second, "target two to turn unhealthy", func() bool { return !routesHealth(r, b2.addr()) })
	before := b2.hits.Load()
	for range 50 {
		if _, got := get(t, c, prodURL(r)); got != "one" {
			t.Fatalf("unhealthy target served a request")
		}
	}
	if b2.hits.Load() != before {
		t.Fatal("unhealthy target got traffic")
	}

	b2.failing.Store(false)
	testwait.For(t, 5*time.Second, "target two to recover", func() bool { return routesHealth(r, b2.addr()) })
	testwait.For(t, 5*time.Second, "target two to get traffic again", func() bool {
		get(t, c, prodURL(r))
		return b2.hits.Load() > before
	})
}

func TestTargetDiesAndComesBack(t *testing.T) {
	b1 := newBackend(t, "one")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr2 := ln.Addr().String()
	serve := func(ln net.Listener) *http.Server {
		s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "two") })}
		go s.Serve(ln)
		return s
	}
	s2 := serve(ln)
	cfg := &Config{Apps: map[string]*AppConfig{"shop": {
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{b1.addr(), addr2}}},
		Health: &HealthConfig{Path: "/healthz", Interval: Duration(20 * time.Millisecond), HealthyThreshold: 1, UnhealthyThreshold: 1},
	}}}
	r := startRouter(t, cfg)
	c := &http.Client{}
	testwait.For(t, 5*time.Second, "both targets to serve", func() bool {
		_, got := get(t, c, prodURL(r))
		return got == "two"
	})

	s2.Close() // the target dies: its pooled connections and its port are gone
	for range 100 {
		resp, got := get(t, c, prodURL(r))
		if resp.StatusCode != 200 || got != "one" {
			t.Fatalf("while a target is dead, GET answered %d %q: the request should have gone to the live target", resp.StatusCode, got)
		}
	}
	testwait.For(t, 5*time.Second, "dead target to be marked unhealthy", func() bool { return !routesHealth(r, addr2) })

	ln, err = net.Listen("tcp", addr2)
	if err != nil {
		t.Skipf("port %s was taken meanwhile: %v", addr2, err)
	}
	s2 = serve(ln)
	defer s2.Close()
	testwait.For(t, 5*time.Second, "target to come back", func() bool { return routesHealth(r, addr2) })
	testwait.For(t, 5*time.Second, "target to get traffic again", func() bool {
		_, got := get(t, c, prodURL(r))
		return got == "two"
	})
}

// resetter accepts connections, reads one request head and closes: a target that
// received the request and died before answering.
func resetter(t *testing.T) (addr string, received *atomic.Int64) {
	received = &atomic.Int64{}
	addr = rawUpstream(t, func(net.Conn, *bufio.Reader) { received.Add(1) })
	return addr, received
}

func TestRetryRefusedButNeverReplaySentUnlessIdempotent(t *testing.T) {
	good := newBackend(t, "good")
	dead := freeAddr(t) // nothing listens: connection refused

	// Refused before anything was sent: retried on the other target, for any method.
	r := startRouter(t, &Config{Apps: map[string]*AppConfig{"shop": {
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{dead, good.addr()}}},
	}}})
	c := &http.Client{}
	for i := range 20 {
		resp, err := c.Post(prodURL(r), "text/plain", strings.NewReader(fmt.Sprint("body ", i)))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("POST with one refusing target answered %d", resp.StatusCode)
		}
	}

	// Sent, then the target died: a POST is not replayed, a GET is.
	bad, received := resetter(t)
	r2 := startRouter(t, &Config{Apps: map[string]*AppConfig{"shop": {
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{bad, good.addr()}}},
	}}})
	posts502 := 0
	for i := range 40 {
		resp, err := c.Post(prodURL(r2), "text/plain", strings.NewReader(fmt.Sprint("body ", i)))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusBadGateway {
			posts502++
		}
		// the passive mark would hide the bad target: clear it to keep testing it
		for _, tg := range r2.table.Load().apps["shop"].fleets[0].targets {
			tg.suspectUntil.Store(0)
		}
	}
	if posts502 == 0 || int64(posts502) != received.Load() {
		t.Fatalf("POSTs: %d answered 502, the dying target received %d: each POST it received must fail, not be replayed", posts502, received.Load())
	}
	before := received.Load()
	for range 40 {
		resp, body := get(t, c, prodURL(r2))
		if resp.StatusCode != 200 || body != "good" {
			t.Fatalf("GET answered %d %q %v: an idempotent request should have been replayed on the live target", resp.StatusCode, body, resp.Header)
		}
		for _, tg := range r2.table.Load().apps["shop"].fleets[0].targets {
			tg.suspectUntil.Store(0)
		}
	}
	if received.Load() == before {
		t.Fatal("the dying target never received a GET: the test proved nothing")
	}
}

func TestNoHealthyFleetFallsBackThen503(t *testing.T) {
	blue, green := newBackend(t, "blue"), newBackend(t, "green")
	cfg := twoFleets(blue.addr(), green.addr(), 100, 0)
	cfg.Apps["shop"].Health = &HealthConfig{Path: "/healthz", Interval: Duration(20 * time.Millisecond), HealthyThreshold: 1, UnhealthyThreshold: 1}
	r := startRouter(t, cfg)
	c := &http.Client{}

	blue.failing.Store(true)
	testwait.For(t, 5*time.Second, "blue unhealthy", func() bool { return !routesHealth(r, blue.addr()) })
	for range 10 {
		if resp, got := get(t, c, prodURL(r)); got != "green" {
			t.Fatalf("blue (weight 100) unhealthy: got %d %q, want the healthy green", resp.StatusCode, got)
		}
	}
	green.failing.Store(true)
	testwait.For(t, 5*time.Second, "green unhealthy", func() bool { return !routesHealth(r, green.addr()) })
	resp, body := get(t, c, prodURL(r))
	if resp.StatusCode != http.StatusServiceUnavailable || body != "bluegreen: no healthy target for app shop\n" {
		t.Fatalf("nothing healthy: got %d %q", resp.StatusCode, body)
	}
}

func TestBalancesAcrossTargetsOfAFleet(t *testing.T) {
	b1, b2, b3 := newBackend(t, "one"), newBackend(t, "two"), newBackend(t, "three")
	r := startRouter(t, &Config{Apps: map[string]*AppConfig{"shop": {
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{b1.addr(), b2.addr(), b3.addr()}}},
	}}})
	c := &http.Client{}
	counts := map[string]int{}
	for range 600 {
		_, got := get(t, c, prodURL(r))
		counts[got]++
	}
	// With nothing in flight the two choices are random: each target gets about a third.
	for _, name := range []string{"one", "two", "three"} {
		if counts[name] < 140 || counts[name] > 260 {
			t.Fatalf("target %s served %d of 600: %v", name, counts[name], counts)
		}
	}
}

func TestPowerOfTwoChoicesAvoidsTheBusyTarget(t *testing.T) {
	release := make(chan struct{})
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			<-release
		}
		io.WriteString(w, "busy")
	}))
	defer busy.Close()
	defer close(release)
	idle := newBackend(t, "idle")
	r := startRouter(t, &Config{Apps: map[string]*AppConfig{"shop": {
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{strings.TrimPrefix(busy.URL, "http://"), idle.addr()}}},
	}}})
	// Hold requests open until the busy target has several in flight.
	for range 20 {
		go http.Get(prodURL(r) + "/hold")
	}
	busyTarget := r.table.Load().apps["shop"].fleets[0].targets[0]
	testwait.For(t, 5*time.Second, "every held request to be placed", func() bool {
		return busyTarget.stats.inflight.Load()+idle.hits.Load() == 20
	})
	if busyTarget.stats.inflight.Load() < 3 {
		t.Skipf("only %d requests landed on the busy target", busyTarget.stats.inflight.Load())
	}
	before := idle.hits.Load()
	for range 50 {
		if _, got := get(t, &http.Client{}, prodURL(r)); got != "idle" {
			t.Fatalf("a new request went to the target with %d in flight", busyTarget.stats.inflight.Load())
		}
	}
	if idle.hits.Load()-before != 50 {
		t.Fatal("the idle target did not take the new requests")
	}
}

func TestHealthCheckHostAndStatus(t *testing.T) {
	var sawHost atomic.Value
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/status" {
			sawHost.Store(r.Host)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer be.Close()
	addr := strings.TrimPrefix(be.URL, "http://")
	cfg := &Config{Apps: map[string]*AppConfig{"shop": {
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{addr}}},
		Health: &HealthConfig{Path: "/status", Host: "health.internal", Status: []int{200},
			Interval: Duration(20 * time.Millisecond), HealthyThreshold: 1, UnhealthyThreshold: 1},
	}}}
	r := startRouter(t, cfg)
	// 204 is not in the accepted list: the target goes unhealthy.
	testwait.For(t, 5*time.Second, "204 to count as a failed check", func() bool { return !routesHealth(r, addr) })
	if h, _ := sawHost.Load().(string); h != "health.internal" {
		t.Fatalf("health check Host %q", h)
	}
	cfg = r.Config()
	cfg.Apps["shop"].Health.Status = []int{200, 204}
	if _, err := r.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 5*time.Second, "204 accepted once listed", func() bool { return routesHealth(r, addr) })
}

// A new target starts healthy on trust; checks in /stats tell the trust
// (0) from a verdict, and the first failing check takes it out at once.
func TestStatsCountHealthChecks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens: every check fails
	up := newBackend(t, "up")
	cfg := &Config{Apps: map[string]*AppConfig{"shop": {
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{up.addr(), dead}}},
		Health: &HealthConfig{Path: "/healthz", Interval: Duration(time.Hour), Timeout: Duration(time.Second), HealthyThreshold: 1, UnhealthyThreshold: 3},
	}}}
	r := startRouter(t, cfg)
	target := func(addr string) TargetSnapshot {
		for _, ts := range r.Stats().Apps["shop"].Fleets["blue"].Targets {
			if ts.Address == addr {
				return ts
			}
		}
		t.Fatalf("no target %s in the stats", addr)
		return TargetSnapshot{}
	}
	testwait.For(t, 5*time.Second, "one check of each target", func() bool { return target(up.addr()).Checks == 1 && target(dead).Checks == 1 })
	if !target(up.addr()).Healthy || target(dead).Healthy {
		t.Fatalf("after the first check: up %+v, dead %+v", target(up.addr()), target(dead))
	}
}

// TestHealthChecksKeepTheirConnection: the checks of a target go over one
// connection kept open between them, not a new one each (with thousands of
// targets, new connections were most of an idle router's CPU and filled
// the kernel's table of closed connections); when the target closes it, the
// next check connects anew.
func TestHealthChecksKeepTheirConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	s := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		},
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	addr := ln.Addr().String()
	cfg := &Config{Apps: map[string]*AppConfig{"shop": {
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{addr}}},
		Health: &HealthConfig{Path: "/healthz", Interval: Duration(10 * time.Millisecond), HealthyThreshold: 1, UnhealthyThreshold: 3},
	}}}
	r := startRouter(t, cfg)
	checks := func() uint64 { return r.Stats().Apps["shop"].Fleets["blue"].Targets[0].Checks }
	testwait.For(t, 10*time.Second, "20 checks", func() bool { return checks() >= 20 })
	if n := conns.Load(); n != 1 {
		t.Fatalf("20 checks opened %d connections, want 1", n)
	}
	// The target closes its idle connections (as at a graceful shutdown
	// that then goes on serving): the checks carry on over a new one.
	s.SetKeepAlivesEnabled(false)
	s.SetKeepAlivesEnabled(true)
	from := checks()
	testwait.For(t, 10*time.Second, "20 more checks", func() bool { return checks() >= from+20 })
	if !routesHealth(r, addr) {
		t.Fatal("the target turned unhealthy when it closed an idle connection")
	}
}
