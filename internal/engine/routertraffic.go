package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"bluegreen/internal/router"
	"bluegreen/internal/routerproc"
	"bluegreen/internal/store"
)

// RouterTraffic is Traffic on the built-in router, run as its own process
// by a routerproc.Supervisor. The router holds one table for every app;
// RouterTraffic keeps the app entries it last pushed and, when some of them
// change, sends the router those apps only (the supervisor pushes the whole
// table the first time). Changes asked for while a push is on their way go
// together in the next one: each push still costs the router a check and a
// compilation of the whole table, so with many apps deploying at once, one
// push per change would cost the number of apps squared.
type RouterTraffic struct {
	sup *routerproc.Supervisor

	// pushing is held by the caller that pushes a batch.
	pushing sync.Mutex

	mu      sync.Mutex
	table   *router.Config // nil until read from the running router
	pushed  map[string][]byte
	waiting []*routeChange // changes the next push carries, in order
	// forgot counts Forget calls: a push that began before one does not
	// keep its table, which the next Route reads again from the router.
	forgot int
	// gates are the apps paused or in maintenance; every push carries
	// them (see routergate.go).
	gates map[string]store.Gate
}

// routeChange is one app's routes asked for by Route, waiting for a push.
type routeChange struct {
	app    string
	routes Routes
	enc    []byte
	done   chan error // receives the outcome once
	// gateOnly changes the app's gate on the routes it has by then.
	gateOnly bool
}

// batchTimeout bounds a push made for several callers, none of whose
// contexts alone should end it.
const batchTimeout = routerproc.DefaultCallTimeout

// NewRouterTraffic drives the router that sup runs.
func NewRouterTraffic(sup *routerproc.Supervisor) *RouterTraffic {
	return &RouterTraffic{sup: sup, pushed: map[string][]byte{}}
}

// load starts from the running router's table, so that apps this process
// has not routed yet (after a restart) stay as the router has them. The
// caller holds t.mu.
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

// Route implements Traffic. Pushing what was last pushed is skipped; a
// change waits for the push in progress, if any, and goes with the next,
// together with the changes of other apps that came meanwhile.
func (t *RouterTraffic) Route(ctx context.Context, app string, routes Routes) error {
	if len(routes) == 0 {
		routes = nil
	}
	t.mu.Lock()
	routes = t.gated(app, routes)
	t.mu.Unlock()
	enc, err := json.Marshal(routes)
	if err != nil {
		return fmt.Errorf("encoding the routes of app %s: %w", app, err)
	}
	c := &routeChange{app: app, routes: routes, enc: enc, done: make(chan error, 1)}
	t.mu.Lock()
	if prev, ok := t.pushed[app]; ok && string(prev) == string(enc) && !t.waitingFor(app) {
		t.mu.Unlock()
		return nil
	}
	if routes == nil && t.table != nil && !t.waitingFor(app) && !t.routes(app) {
		t.pushed[app] = enc // nothing to remove
		t.mu.Unlock()
		return nil
	}
	t.waiting = append(t.waiting, c)
	t.mu.Unlock()
	return t.send(ctx, c)
}

// send pushes c, which waits among t.waiting, with the changes waiting
// with it, unless a push made by another caller carried it.
func (t *RouterTraffic) send(ctx context.Context, c *routeChange) error {
	t.pushing.Lock()
	defer t.pushing.Unlock()
	select {
	case err := <-c.done: // pushed by the caller before
		return err
	default:
	}
	t.mu.Lock()
	batch := t.waiting
	t.waiting = nil
	t.mu.Unlock()
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
	defer cancel()
	t.push(bctx, batch)
	return <-c.done
}

// waitingFor says whether a change of app waits for a push. The caller
// holds t.mu.
func (t *RouterTraffic) waitingFor(app string) bool {
	for _, c := range t.waiting {
		if c.app == app {
			return true
		}
	}
	return false
}

// routes says whether the table has a router app of app. The caller holds
// t.mu.
func (t *RouterTraffic) routes(app string) bool {
	for name := range t.table.Apps {
		if ownedBy(name, app) {
			return true
		}
	}
	return false
}

// push makes the router take a batch of changes in one table, and tells
// each change how it went. A table the router refuses is tried again one
// change at a time, so that the refusal is the app's that caused it. The
// caller holds t.pushing.
func (t *RouterTraffic) push(ctx context.Context, batch []*routeChange) {
	if err := t.apply(ctx, batch); err == nil || len(batch) == 1 || !errors.Is(err, routerproc.ErrRefused) {
		for _, c := range batch {
			c.done <- routeError(c.app, err)
		}
		return
	}
	for _, c := range batch {
		c.done <- routeError(c.app, t.apply(ctx, []*routeChange{c}))
	}
}

// apply pushes the table with the batch's routes (the last of an app's
// wins) and, once the router has it, keeps it as pushed; a failed push
// leaves the table as it was.
func (t *RouterTraffic) apply(ctx context.Context, batch []*routeChange) error {
	t.mu.Lock()
	if err := t.load(ctx); err != nil {
		t.mu.Unlock()
		return err
	}
	forgot := t.forgot
	next := *t.table
	next.Apps = maps.Clone(t.table.Apps)
	var changed []string
	for _, c := range batch {
		if c.gateOnly {
			t.regate(next.Apps, c.app)
			for name := range next.Apps {
				if ownedBy(name, c.app) {
					changed = append(changed, name)
				}
			}
			continue
		}
		for name := range replaceApp(next.Apps, c.app, c.routes) {
			changed = append(changed, name)
		}
		for name := range c.routes {
			changed = append(changed, name)
		}
	}
	t.mu.Unlock()
	if _, err := t.sup.Update(ctx, next, changed); err != nil {
		return err
	}
	t.mu.Lock()
	if t.forgot == forgot {
		t.table = &next
		for _, c := range batch {
			if c.gateOnly {
				delete(t.pushed, c.app) // the next Route pushes whole
				continue
			}
			t.pushed[c.app] = c.enc
		}
	}
	t.mu.Unlock()
	return nil
}

// routeError is refusal, and nil for nil.
func routeError(app string, err error) error {
	if err == nil {
		return nil
	}
	return refusal(app, err)
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

// Check implements Traffic: the table with routes as app's is validated
// as the router would, without a push. Of the other apps it keeps only
// those that share a listener with app's routes, and of them only what
// they claim (their listeners and hosts), which is all that the checks
// spanning apps look at: a full table of a thousand apps, encoded and
// parsed again for every deployment, would cost every deployment the size
// of all the others.
func (t *RouterTraffic) Check(ctx context.Context, app string, routes Routes) error {
	// Validation fills defaults in: on a copy.
	var mine Routes
	if len(routes) > 0 {
		b, err := json.Marshal(routes)
		if err != nil {
			return fmt.Errorf("encoding the routes of app %s: %w", app, err)
		}
		if err := json.Unmarshal(b, &mine); err != nil {
			return fmt.Errorf("copying the routes of app %s: %w", app, err)
		}
	}
	t.mu.Lock()
	if err := t.load(ctx); err != nil {
		t.mu.Unlock()
		return err
	}
	probe := *t.table
	probe.Apps = map[string]*router.AppConfig{}
	var addrs []string
	for name, cfg := range mine {
		probe.Apps[name] = cfg
		addrs = append(addrs, listenerAddrs(&probe, cfg)...)
	}
	for name, other := range t.table.Apps {
		if !ownedBy(name, app) && sharesListener(addrs, listenerAddrs(&probe, other)) {
			probe.Apps[name] = claims(other)
		}
	}
	t.mu.Unlock()
	if err := probe.Validate(); err != nil {
		return refusal(app, routerproc.Refused(err.Error()))
	}
	return nil
}

// listenerAddrs are the production and test addresses a router app is
// served on, the table's defaults filled in.
func listenerAddrs(tbl *router.Config, a *router.AppConfig) []string {
	out := []string{a.Production, a.Test}
	if out[0] == "" {
		out[0] = tbl.Production
	}
	if out[1] == "" {
		out[1] = tbl.Test
	}
	return out
}

func sharesListener(a, b []string) bool {
	for _, x := range a {
		if x != "" && slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// claims is what an app claims of the listeners it is served on: the
// addresses, their TLS and the hosts, with a fleet that takes nothing.
func claims(a *router.AppConfig) *router.AppConfig {
	return &router.AppConfig{
		Production: a.Production, Test: a.Test, ProductionTLS: a.ProductionTLS, TestTLS: a.TestTLS,
		Hosts: slices.Clone(a.Hosts), TestHosts: slices.Clone(a.TestHosts),
		Fleets: map[string]*router.FleetConfig{"claim": {}},
	}
}

// Forget drops what was last pushed, so the next Route of every app pushes
// again (after the router was restarted from its route file, say).
func (t *RouterTraffic) Forget() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pushed = map[string][]byte{}
	t.table = nil
	t.forgot++
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

// MetricsAll implements AllMetrics: every router app's fleets from one
// snapshot, by router app.
func (t *RouterTraffic) MetricsAll(ctx context.Context, window time.Duration) (map[string]map[string]FleetMetrics, error) {
	window = min(max((window+time.Second-1).Truncate(time.Second), router.MinWindow), router.MaxWindow)
	snap, err := t.sup.Client().Stats(ctx, routerproc.StatsOptions{Window: window})
	if err != nil {
		return nil, fmt.Errorf("reading the router's metrics: %w", err)
	}
	out := make(map[string]map[string]FleetMetrics, len(snap.Apps))
	name := router.WindowName(window)
	for a, as := range snap.Apps {
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
