package routerproc

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"bluegreen/internal/router"
	"bluegreen/internal/testwait"
)

func TestClientStatsAndDrain(t *testing.T) {
	dir := stateDir(t)
	s, _ := start(t, dir, nil)
	ctx := context.Background()
	c := s.Client()
	prod := freeAddr(t)
	release := make(chan struct{})
	cfg := oneApp(prod, backend(t, "blue", release))
	cfg.Apps["shop"].Fleets["green"] = &router.FleetConfig{Weight: 0, Targets: []string{backend(t, "green", nil)}}
	if _, err := s.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for range 7 {
		mustFetch(t, "http://"+prod+"/", "blue")
	}

	snap, err := c.Stats(ctx, StatsOptions{Window: 5 * time.Second, App: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	w, ok := snap.Apps["shop"].Fleets["blue"].Windows[snap.Window]
	if snap.Window != "5s" || !ok || w.Requests != 7 || w.P95 <= 0 {
		t.Fatalf("window %q: %+v (present %v)", snap.Window, w, ok)
	}
	if _, err := c.Stats(ctx, StatsOptions{Window: 90 * time.Second}); err != nil {
		t.Fatalf("90s window: %v", err)
	}
	_, err = c.Stats(ctx, StatsOptions{App: "nope"})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 404 || apiErr.Code != "not_found" ||
		err.Error() != `GET /stats?app=nope: router answered 404 not_found: app "nope": not in the routing table` {
		t.Fatalf("unknown app: %v", err)
	}
	if _, err := c.Stats(ctx, StatsOptions{Window: 1500 * time.Millisecond}); !errors.As(err, &apiErr) || apiErr.Code != "invalid_request" ||
		!strings.Contains(apiErr.Message, "window:") {
		t.Fatalf("bad window: %v", err)
	}

	// A drain waits for the open request, which finishes once released.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		fetch("http://" + prod + "/slow")
	}()
	testwait.For(t, 10*time.Second, "the slow request in flight", func() bool {
		s, err := c.Stats(ctx, StatsOptions{})
		return err == nil && s.Apps["shop"].Fleets["blue"].InFlight == 1
	})
	done := make(chan DrainReport, 1)
	go func() {
		rep, err := c.Drain(ctx, DrainRequest{App: "shop", Fleet: "blue", Timeout: 20 * time.Second})
		if err != nil {
			t.Errorf("drain: %v", err)
		}
		done <- rep
	}()
	testwait.For(t, 10*time.Second, "blue fenced", func() bool {
		v, err := c.RoutesView(ctx)
		return err == nil && v.Table.Apps["shop"].Fleets["blue"].Fenced
	})
	close(release)
	rep := <-done
	wg.Wait()
	if !rep.Complete || rep.OpenRequests != 0 || rep.App != "shop" || rep.Fleet != "blue" {
		t.Fatalf("drain report %+v", rep)
	}

	if _, err := c.Drain(ctx, DrainRequest{App: "shop", Fleet: "purple", Timeout: time.Second}); !errors.As(err, &apiErr) || apiErr.Code != "not_found" {
		t.Fatalf("drain of an unknown fleet: %v", err)
	}
	if _, err := c.Drain(ctx, DrainRequest{App: "shop", Fleet: "green"}); err == nil || !strings.Contains(err.Error(), "timeout must be above zero") {
		t.Fatalf("drain without a timeout: %v", err)
	}
}

func TestClientErrors(t *testing.T) {
	dir := stateDir(t)
	s, _ := start(t, dir, nil)
	ctx := context.Background()
	c := s.Client()
	bad := oneApp(freeAddr(t), "127.0.0.1:1")
	bad.Apps["shop"].Fleets["blue"].Weight = 250
	_, err := c.PutRoutes(ctx, bad)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Code != "invalid_table" ||
		!strings.Contains(apiErr.Message, "apps.shop.fleets.blue.weight: 250 is out of range 0..100") ||
		!strings.HasPrefix(err.Error(), "PUT /routes: router answered 400 invalid_table: invalid routing table:") {
		t.Fatalf("invalid table: %v", err)
	}

	// Something that is not the router's JSON keeps its text.
	if err := c.do(ctx, http.MethodGet, "/nowhere", nil, &struct{}{}); !errors.As(err, &apiErr) || apiErr.Status != 404 || apiErr.Code != "" ||
		!strings.Contains(err.Error(), "router answered 404: 404 page not found") {
		t.Fatalf("unknown path: %v", err)
	}

	// No router on the socket: a connection error naming the address.
	none := NewClient("unix:"+dir+"/none.sock", "")
	if _, err := none.Health(ctx); err == nil || errors.As(err, &apiErr) || !strings.Contains(err.Error(), "none.sock") {
		t.Fatalf("no router: %v", err)
	}
}

func TestClientOverLoopbackWithToken(t *testing.T) {
	r := router.New(router.Options{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Shutdown(ctx)
	})
	if _, err := r.Apply(&router.Config{AdminToken: "s3cret", Apps: map[string]*router.AppConfig{}}); err != nil {
		t.Fatal(err)
	}
	addr, err := r.ListenAdmin("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := NewClient(addr.String(), "s3cret")
	if gen, err := c.Health(ctx); err != nil || gen != 1 {
		t.Fatalf("health with the token: %d %v", gen, err)
	}
	prod := freeAddr(t)
	gen, err := c.PutRoutes(ctx, oneApp(prod, backend(t, "blue", nil)))
	if err != nil || gen != 2 {
		t.Fatalf("put: %d %v", gen, err)
	}
	mustFetch(t, "http://"+prod+"/", "blue")
	if cfg, g, err := c.Routes(ctx); err != nil || g != 2 || cfg.AdminToken != "" || cfg.Apps["shop"] == nil {
		t.Fatalf("routes: %+v %d %v", cfg, g, err)
	}

	_, err = NewClient(addr.String(), "wrong").Stats(ctx, StatsOptions{})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 401 || apiErr.Code != "unauthorized" {
		t.Fatalf("wrong token: %v", err)
	}
}

func TestRouteFileRoundTrips(t *testing.T) {
	cfg := oneApp("127.0.0.1:8080", "127.0.0.1:9001")
	a := cfg.Apps["shop"]
	a.Hosts = []string{"*", "shop.example.com"}
	a.Health = &router.HealthConfig{Path: "/healthz", Interval: router.Duration(time.Second)}
	a.Sticky = true
	a.Fleets["green"] = &router.FleetConfig{Weight: 0, Targets: []string{"127.0.0.1:9002"}, Revision: "true", Fenced: true}
	cfg.Admin = "unix:/run/bg/admin.sock"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	data, err := encodeRouteFile(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	back, err := router.ParseYAML(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if back.Apps["shop"].Fleets["green"].Revision != "true" || !back.Apps["shop"].Fleets["green"].Fenced ||
		back.Apps["shop"].Health.Interval.D() != time.Second || back.Apps["shop"].StickyCookie != "bg_shop" ||
		back.Apps["shop"].Hosts[0] != "*" || back.Admin != cfg.Admin {
		t.Fatalf("round trip:\n%s", data)
	}
	if strings.Contains(string(data), `""`) || strings.Contains(string(data), "null") {
		t.Fatalf("empty fields written:\n%s", data)
	}
}

func TestCapLogEmptiesInPlace(t *testing.T) {
	path := t.TempDir() + "/router.log"
	// The router writes through a descriptor opened in append mode, as spawn opens it.
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.WriteString(strings.Repeat("old line\n", 20))
	if err := capLog(path, 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".1"); !os.IsNotExist(err) {
		t.Fatal("rotated a log under the cap")
	}
	if err := capLog(path, 100); err != nil {
		t.Fatal(err)
	}
	w.WriteString("new line\n")
	cur, _ := os.ReadFile(path)
	old, _ := os.ReadFile(path + ".1")
	if string(cur) != "new line\n" || len(old) != 180 {
		t.Fatalf("after rotation: current %q, old %d bytes", cur, len(old))
	}
}
