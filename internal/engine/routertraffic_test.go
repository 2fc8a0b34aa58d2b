package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"bluegreen/internal/freeport"
	"bluegreen/internal/router"
	"bluegreen/internal/routerproc"
	"bluegreen/internal/testbin"
	"bluegreen/internal/testwait"
)

// bluegreenBin is the real binary, built once for the package: its
// "router" command is the router RouterTraffic drives.
var bluegreenBin string

func TestMain(m *testing.M) {
	testbin.Main(m, testbin.Program{Path: &bluegreenBin, Pkg: "bluegreen/cmd/bluegreen"})
}

// startRouter runs a real router under a supervisor, stopped at the end.
func startRouter(t *testing.T) *routerproc.Supervisor {
	t.Helper()
	dir, err := os.MkdirTemp("", "bgrt-") // short: a unix socket path
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sup, err := routerproc.Start(ctx, routerproc.Options{Dir: dir, Command: []string{bluegreenBin, "router"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := sup.StopRouter(sctx); err != nil {
			t.Errorf("stopping the router: %v", err)
		}
		cancel()
		os.RemoveAll(dir)
	})
	return sup
}

// hostApp serves host on the shared listener prod, from one target.
func hostApp(prod, host string) *router.AppConfig {
	return &router.AppConfig{Production: prod, Hosts: []string{host},
		Fleets: map[string]*router.FleetConfig{"blue": {Weight: 100, Targets: []string{freeportAddr()}, Revision: "1"}}}
}

func freeportAddr() string {
	a, err := freeport.Addr()
	if err != nil {
		panic(err)
	}
	return a
}

// routeAll asks for every app's route at once, while a push is held, and
// returns each one's outcome once the held push is let go.
func routeAll(t *testing.T, rt *RouterTraffic, cfgs map[string]*router.AppConfig) map[string]error {
	t.Helper()
	rt.pushing.Lock() // a push in progress: every change waits for the next
	var mu sync.Mutex
	out := map[string]error{}
	var wg sync.WaitGroup
	for app, cfg := range cfgs {
		wg.Go(func() {
			err := rt.Route(context.Background(), app, Routes{app: cfg})
			mu.Lock()
			out[app] = err
			mu.Unlock()
		})
	}
	testwait.For(t, 30*time.Second, fmt.Sprintf("all %d changes to wait for the push", len(cfgs)), func() bool {
		rt.mu.Lock()
		defer rt.mu.Unlock()
		return len(rt.waiting) == len(cfgs)
	})
	rt.pushing.Unlock()
	wg.Wait()
	return out
}

// Changes asked for while a push is on its way go together in the next
// one; a refused batch is tried again change by change, so that only the
// app at fault is refused, by name.
func TestRouteChangesGoTogether(t *testing.T) {
	sup := startRouter(t)
	rt := NewRouterTraffic(sup)
	ctx := context.Background()
	prod := freeportAddr()
	if err := rt.Route(ctx, "a0", Routes{"a0": hostApp(prod, "a0.test")}); err != nil {
		t.Fatal(err)
	}
	gen, err := sup.Client().Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfgs := map[string]*router.AppConfig{}
	for i := 1; i <= 20; i++ {
		cfgs[fmt.Sprintf("a%d", i)] = hostApp(prod, fmt.Sprintf("a%d.test", i))
	}
	for app, err := range routeAll(t, rt, cfgs) {
		if err != nil {
			t.Errorf("Route %s: %v", app, err)
		}
	}
	after, _ := sup.Client().Health(ctx)
	if after != gen+1 {
		t.Errorf("20 changes took %d pushes, want 1", after-gen)
	}
	tbl, _, err := sup.Client().Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(tbl.Apps) != 21 {
		t.Fatalf("the router has %d apps, want 21", len(tbl.Apps))
	}

	// b1 claims a0's host: the batch is refused, then b1 alone.
	b0 := hostApp(prod, "b0.test")
	errs := routeAll(t, rt, map[string]*router.AppConfig{
		"b0": b0, "b1": hostApp(prod, "a0.test"), "b2": hostApp(prod, "b2.test"),
	})
	var pe *PermanentError
	if err := errs["b1"]; !errors.As(err, &pe) || !strings.Contains(err.Error(), "app b1") {
		t.Errorf("the app at fault: err = %v, want a refusal naming b1", err)
	}
	if errs["b0"] != nil || errs["b2"] != nil {
		t.Errorf("the others: b0 %v, b2 %v; want both routed", errs["b0"], errs["b2"])
	}
	tbl, _, _ = sup.Client().Routes(ctx)
	if tbl.Apps["b0"] == nil || tbl.Apps["b2"] == nil || tbl.Apps["b1"] != nil || len(tbl.Apps[`a0`].Hosts) != 1 {
		t.Errorf("after the refusal the router has %d apps (b0 %v, b1 %v, b2 %v)", len(tbl.Apps), tbl.Apps["b0"] != nil, tbl.Apps["b1"] != nil, tbl.Apps["b2"] != nil)
	}

	// Every app's fleets in one read.
	all, err := rt.MetricsAll(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 23 || all["a3"]["blue"].Weight != 100 || len(all["a3"]["blue"].Targets) != 1 {
		t.Errorf("MetricsAll: %d apps, a3 %+v", len(all), all["a3"])
	}

	// Check looks at the apps that share a listener, by what they claim.
	if err := rt.Check(ctx, "c1", Routes{"c1": hostApp(prod, "a3.test")}); !errors.As(err, &pe) || !strings.Contains(err.Error(), "app c1") || !strings.Contains(err.Error(), "a3.test") {
		t.Errorf("Check of a host another app has: %v", err)
	}
	if err := rt.Check(ctx, "c1", Routes{"c1": hostApp(freeportAddr(), "a3.test")}); err != nil {
		t.Errorf("Check of the same host on another listener: %v", err)
	}
	if err := rt.Check(ctx, "a3", Routes{"a3": hostApp(prod, "a3.test")}); err != nil {
		t.Errorf("Check of an app's own host: %v", err)
	}
	bad := hostApp(prod, "c1.test")
	bad.Fleets["blue"].Weight = 120
	if err := rt.Check(ctx, "c1", Routes{"c1": bad}); !errors.As(err, &pe) || !strings.Contains(err.Error(), "weight") {
		t.Errorf("Check of a bad weight: %v", err)
	}

	// The same route again is no push at all.
	gen, _ = sup.Client().Health(ctx)
	if err := rt.Route(ctx, "b0", Routes{"b0": b0}); err != nil {
		t.Fatal(err)
	}
	if after, _ := sup.Client().Health(ctx); after != gen {
		t.Errorf("the same route again made %d pushes, want none", after-gen)
	}
}
