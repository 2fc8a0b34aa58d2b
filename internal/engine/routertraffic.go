package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"bluegreen/internal/router"
	"bluegreen/internal/routerproc"
)

// RouterTraffic is Traffic on the built-in router, run as its own process
// by a routerproc.Supervisor. The router holds one table for every app;
// RouterTraffic keeps the app entries it last pushed and pushes the whole
// table when one of them changes.
type RouterTraffic struct {
	sup *routerproc.Supervisor

	mu     sync.Mutex
	table  *router.Config // nil until read from the running router
	pushed map[string][]byte
}

// NewRouterTraffic drives the router that sup runs.
func NewRouterTraffic(sup *routerproc.Supervisor) *RouterTraffic {
	return &RouterTraffic{sup: sup, pushed: map[string][]byte{}}
}

// load starts from the running router's table, so that apps this process
// has not routed yet (after a restart) stay as the router has them.
func (t *RouterTraffic) load(ctx context.Context) error {
	if t.table != nil {
		return nil
	}
	cfg, _, err := t.sup.Client().Routes(ctx)
	if err != nil {
		return fmt.Errorf("reading the router's table: %w", err)
	}
	if cfg.Apps == nil {
		cfg.Apps = map[string]*router.AppConfig{}
	}
	t.table = &cfg
	return nil
}

// Route implements Traffic. Pushing what was last pushed is skipped.
func (t *RouterTraffic) Route(ctx context.Context, app string, routes Routes) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.load(ctx); err != nil {
		return err
	}
	if len(routes) == 0 {
		routes = nil
	}
	enc, err := json.Marshal(routes)
	if err != nil {
		return fmt.Errorf("encoding the routes of app %s: %w", app, err)
	}
	if prev, ok := t.pushed[app]; ok && string(prev) == string(enc) {
		return nil
	}
	old := replaceApp(t.table.Apps, app, routes)
	if len(old) == 0 && len(routes) == 0 {
		t.pushed[app] = enc
		return nil
	}
	if _, err := t.sup.Apply(ctx, *t.table); err != nil {
		replaceApp(t.table.Apps, app, old)
		return refusal(app, err)
	}
	t.pushed[app] = enc
	return nil
}

// replaceApp puts routes in place of every router app of app in apps
// (the app's own name, and APP.* of a stack's services), and returns
// what was there.
func replaceApp(apps map[string]*router.AppConfig, app string, routes Routes) Routes {
	old := Routes{}
	for name, cfg := range apps {
		if ownedBy(name, app) {
			old[name] = cfg
			delete(apps, name)
		}
	}
	for name, cfg := range routes {
		apps[name] = cfg
	}
	return old
}

// ownedBy says whether a router app belongs to app: it is app, or one of
// the routes of its services (app.SERVICE…). App names have no dots, so no
// other app's routes start with "app.".
func ownedBy(name, app string) bool {
	return name == app || strings.HasPrefix(name, app+".")
}

// refusal names the app whose routes the router refused, as a
// PermanentError; other errors (the router is restarting) pass through.
func refusal(app string, err error) error {
	if errors.Is(err, routerproc.ErrRefused) {
		reason := strings.TrimPrefix(err.Error(), routerproc.ErrRefused.Error()+": ")
		return &PermanentError{Err: fmt.Errorf("the router refused the routes of app %s: %s", app, reason)}
	}
	return fmt.Errorf("routing app %s: %w", app, err)
}

// Check implements Traffic: the table with cfg as app's entry is validated
// as the router would, without a push.
func (t *RouterTraffic) Check(ctx context.Context, app string, routes Routes) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.load(ctx); err != nil {
		return err
	}
	tbl := *t.table
	tbl.Apps = maps.Clone(t.table.Apps)
	replaceApp(tbl.Apps, app, routes)
	probe, err := json.Marshal(tbl)
	if err != nil {
		return fmt.Errorf("encoding the routing table: %w", err)
	}
	if _, err := router.ParseJSON(probe); err != nil {
		return refusal(app, routerproc.Refused(err.Error()))
	}
	return nil
}

// Forget drops what was last pushed, so the next Route of every app pushes
// again (after the router was restarted from its route file, say).
func (t *RouterTraffic) Forget() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pushed = map[string][]byte{}
	t.table = nil
}

// Metrics implements Traffic with a window of the asked length (rounded up
// to whole seconds, within what the router keeps).
func (t *RouterTraffic) Metrics(ctx context.Context, app string, window time.Duration) (map[string]FleetMetrics, error) {
	window = min(max((window+time.Second-1).Truncate(time.Second), router.MinWindow), router.MaxWindow)
	snap, err := t.sup.Client().Stats(ctx, routerproc.StatsOptions{Window: window, App: app})
	var ae *routerproc.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return map[string]FleetMetrics{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the router's metrics of app %s: %w", app, err)
	}
	out := map[string]FleetMetrics{}
	name := router.WindowName(window)
	for fleet, fs := range snap.Apps[app].Fleets {
		out[fleet] = fleetMetrics(fs, name)
	}
	return out, nil
}

// fleetMetrics reads one fleet's snapshot over the window named.
func fleetMetrics(fs router.FleetSnapshot, window string) FleetMetrics {
	w := fs.Windows[window]
	return FleetMetrics{
		Revision: fs.Revision, Weight: fs.Weight, Fenced: fs.Fenced, Test: fs.Test, Healthy: fs.Healthy, Targets: fs.Targets,
		Requests: w.Requests, Errors: w.ByClass["5xx"],
		P50: seconds(w.P50), P95: seconds(w.P95), P99: seconds(w.P99), Latency: w.Latency,
	}
}

// AppMetrics implements Traffic: every router app of app, read in one
// snapshot of the router's metrics.
func (t *RouterTraffic) AppMetrics(ctx context.Context, app string, window time.Duration) (map[string]map[string]FleetMetrics, error) {
	window = min(max((window+time.Second-1).Truncate(time.Second), router.MinWindow), router.MaxWindow)
	snap, err := t.sup.Client().Stats(ctx, routerproc.StatsOptions{Window: window})
	if err != nil {
		return nil, fmt.Errorf("reading the router's metrics of app %s: %w", app, err)
	}
	out := map[string]map[string]FleetMetrics{}
	name := router.WindowName(window)
	for a, as := range snap.Apps {
		if !ownedBy(a, app) {
			continue
		}
		out[a] = map[string]FleetMetrics{}
		for fleet, fs := range as.Fleets {
			out[a][fleet] = fleetMetrics(fs, name)
		}
	}
	return out, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// Drain implements Traffic.
func (t *RouterTraffic) Drain(ctx context.Context, app, fleet string, timeout time.Duration) (router.DrainReport, error) {
	rep, err := t.sup.Client().Drain(ctx, routerproc.DrainRequest{App: app, Fleet: fleet, Timeout: max(timeout, time.Millisecond)})
	if err != nil {
		return rep, fmt.Errorf("draining fleet %s of app %s: %w", fleet, app, err)
	}
	return rep, nil
}
