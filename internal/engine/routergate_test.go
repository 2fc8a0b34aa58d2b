package engine

import (
	"context"
	"testing"
	"time"

	"bluegreen/internal/router"
	"bluegreen/internal/store"
)

// A gate rides on every push of the app's routes, for each of its router
// apps, until it is cleared; other apps are left as they are.
func TestRouterTrafficCarriesGates(t *testing.T) {
	sup := startRouter(t)
	rt := NewRouterTraffic(sup)
	ctx := context.Background()
	prod := freeportAddr()
	internal := hostApp(freeportAddr(), "*")
	if err := rt.Route(ctx, "shop", Routes{"shop": hostApp(prod, "shop.test"), "shop.api": hostApp(prod, "api.shop.test"),
		"shop.api.blue": internal}); err != nil {
		t.Fatal(err)
	}
	if err := rt.Route(ctx, "blog", Routes{"blog": hostApp(prod, "blog.test")}); err != nil {
		t.Fatal(err)
	}
	running := func() map[string]*router.AppConfig {
		t.Helper()
		cfg, _, err := sup.Client().Routes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Apps
	}
	gen := func() uint64 {
		_, g, err := sup.Client().Routes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	paused := store.Gate{App: "shop", Mode: store.GatePaused, MaxWait: 5 * time.Second, MaxHeld: 7}
	if err := rt.SetGate(ctx, "shop", &paused); err != nil {
		t.Fatal(err)
	}
	apps := running()
	for _, name := range []string{"shop", "shop.api"} {
		if p := apps[name].Pause; p == nil || p.MaxWait.D() != 5*time.Second || p.MaxHeld != 7 {
			t.Fatalf("%s after pause: %+v", name, p)
		}
	}
	if apps["blog"].Pause != nil {
		t.Fatal("blog was paused too")
	}
	if apps["shop.api.blue"].Pause != nil {
		t.Fatal("a service's own address was paused: calls between services would wait")
	}
	// The same gate again pushes nothing.
	before := gen()
	if err := rt.SetGate(ctx, "shop", &paused); err != nil {
		t.Fatal(err)
	}
	if g := gen(); g != before {
		t.Fatalf("the same gate pushed a table: generation %d, then %d", before, g)
	}
	// New routes of the app (a deployment's step) keep the gate.
	next := hostApp(prod, "shop.test")
	next.Fleets["blue"].Weight = 50
	next.Fleets["green"] = &router.FleetConfig{Weight: 50, Targets: []string{freeportAddr()}, Revision: "2"}
	if err := rt.Route(ctx, "shop", Routes{"shop": next}); err != nil {
		t.Fatal(err)
	}
	if next.Pause != nil {
		t.Fatal("Route changed the caller's routes")
	}
	apps = running()
	if apps["shop"].Pause == nil || apps["shop"].Fleets["green"] == nil || apps["shop.api"] != nil {
		t.Fatalf("after a route change: %+v", apps["shop"])
	}
	// Maintenance replaces the pause; SetGates with none clears it.
	if err := rt.SetGate(ctx, "shop", &store.Gate{App: "shop", Mode: store.GateMaintenance, Message: "soon", RetryAfter: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if a := running()["shop"]; a.Pause != nil || a.Maintenance == nil || a.Maintenance.Message != "soon" {
		t.Fatalf("after maintenance: %+v %+v", a.Pause, a.Maintenance)
	}
	// A server that starts again with another view of the store (here: a
	// new RouterTraffic) brings the router in line with it.
	rt2 := NewRouterTraffic(sup)
	if err := rt2.SetGates(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if a := running()["shop"]; a.Pause != nil || a.Maintenance != nil {
		t.Fatalf("after SetGates without gates: %+v %+v", a.Pause, a.Maintenance)
	}
}
