package engine

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"strings"

	"bluegreen/internal/router"
	"bluegreen/internal/routerproc"
	"bluegreen/internal/store"
)

// The router learns an app's pause or maintenance from the table, on every
// public route of the app (a stack's public services too, not the
// addresses its services call each other at: a request in flight that
// calls another service must finish). RouterTraffic adds it to every push
// of the app's routes, so the engine's routes never lose it, and SetGate
// pushes the app's routes as they are with the new gate.

// gatedRoute says whether the router app name is a public route of app
// (APP, or APP.SERVICE for a stack), which its gate stands before; a
// service's own addresses (APP.SERVICE.SLOT) are not.
func gatedRoute(name, app string) bool {
	rest, ok := strings.CutPrefix(name, app+".")
	return name == app || (ok && !strings.Contains(rest, "."))
}

// gateConfig is g as the router's table says it; both nil for no gate.
func gateConfig(g *store.Gate) (*router.PauseConfig, *router.MaintenanceConfig) {
	switch {
	case g == nil:
		return nil, nil
	case g.Mode == store.GatePaused:
		return &router.PauseConfig{MaxWait: router.Duration(g.MaxWait), MaxHeld: g.MaxHeld}, nil
	}
	return nil, &router.MaintenanceConfig{Message: g.Message, RetryAfter: router.Duration(g.RetryAfter)}
}

// gateOf is the gate of app in t.gates, nil for none. The caller holds t.mu.
func (t *RouterTraffic) gateOf(app string) *store.Gate {
	if g, ok := t.gates[app]; ok {
		return &g
	}
	return nil
}

// gated is routes with app's gate set on each router app, as copies: the
// caller's routes are left as they are. The caller holds t.mu.
func (t *RouterTraffic) gated(app string, routes Routes) Routes {
	g := t.gateOf(app)
	if g == nil || routes == nil {
		return routes
	}
	p, m := gateConfig(g)
	out := make(Routes, len(routes))
	for name, cfg := range routes {
		if !gatedRoute(name, app) {
			out[name] = cfg
			continue
		}
		c := *cfg
		c.Pause, c.Maintenance = p, m
		out[name] = &c
	}
	return out
}

// regate sets app's gate on its router apps in apps, as copies. The caller
// holds t.mu.
func (t *RouterTraffic) regate(apps map[string]*router.AppConfig, app string) {
	p, m := gateConfig(t.gateOf(app))
	for name, cfg := range apps {
		if gatedRoute(name, app) {
			c := *cfg
			c.Pause, c.Maintenance = p, m
			apps[name] = &c
		}
	}
}

// hasGate says whether every router app of app in the running table has
// the gate g asks for. The caller holds t.mu, and t.table is loaded.
func (t *RouterTraffic) hasGate(app string) bool {
	p, m := gateConfig(t.gateOf(app))
	for name, cfg := range t.table.Apps {
		if gatedRoute(name, app) && (!reflect.DeepEqual(cfg.Pause, p) || !reflect.DeepEqual(cfg.Maintenance, m)) {
			return false
		}
	}
	return true
}

// SetGate implements Gater: the app's routes are pushed again with g,
// unless the router has it already.
func (t *RouterTraffic) SetGate(ctx context.Context, app string, g *store.Gate) error {
	t.mu.Lock()
	if t.gates == nil {
		t.gates = map[string]store.Gate{}
	}
	if g == nil {
		delete(t.gates, app)
	} else {
		t.gates[app] = *g
	}
	return t.pushGates(ctx, []string{app})
}

// SetGates implements Gater: every app's gate at once, in one push of
// the apps whose gate the router does not have yet.
func (t *RouterTraffic) SetGates(ctx context.Context, gates map[string]store.Gate) error {
	t.mu.Lock()
	t.gates = maps.Clone(gates)
	if t.gates == nil {
		t.gates = map[string]store.Gate{}
	}
	if err := t.load(ctx); err != nil {
		t.mu.Unlock()
		return err
	}
	seen := map[string]bool{}
	var apps []string
	for name := range t.table.Apps {
		app, _, _ := strings.Cut(name, ".")
		if !seen[app] {
			seen[app] = true
			apps = append(apps, app)
		}
	}
	return t.pushGates(ctx, apps)
}

// pushGates pushes the gates of apps that the router does not have yet.
// The caller holds t.mu, which pushGates releases.
func (t *RouterTraffic) pushGates(ctx context.Context, apps []string) error {
	if err := t.load(ctx); err != nil {
		t.mu.Unlock()
		return err
	}
	var changes []*routeChange
	for _, app := range apps {
		if t.hasGate(app) && !t.waitingFor(app) {
			continue
		}
		c := &routeChange{app: app, gateOnly: true, done: make(chan error, 1)}
		t.waiting = append(t.waiting, c)
		changes = append(changes, c)
	}
	t.mu.Unlock()
	var first error
	for _, c := range changes {
		if err := t.send(ctx, c); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Held implements Gater: the requests the router holds for app now.
func (t *RouterTraffic) Held(ctx context.Context, app string) (int64, error) {
	snap, err := t.sup.Client().Stats(ctx, routerproc.StatsOptions{})
	if err != nil {
		return 0, fmt.Errorf("reading the router's held requests of app %s: %w", app, err)
	}
	var n int64
	for name, as := range snap.Apps {
		if ownedBy(name, app) {
			n += as.Held
		}
	}
	return n, nil
}
