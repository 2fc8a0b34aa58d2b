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
func (t *RouterTraffic) Route(ctx context.Context, app string, cfg *router.AppConfig) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.load(ctx); err != nil {
		return err
	}
	enc, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encoding the route of app %s: %w", app, err)
	}
	if prev, ok := t.pushed[app]; ok && string(prev) == string(enc) {
		return nil
	}
	old, had := t.table.Apps[app]
	if cfg == nil {
		if !had {
			t.pushed[app] = enc
			return nil
		}
		delete(t.table.Apps, app)
	} else {
		t.table.Apps[app] = cfg
	}
	if _, err := t.sup.Apply(ctx, *t.table); err != nil {
		if had {
			t.table.Apps[app] = old
		} else {
			delete(t.table.Apps, app)
		}
		return refusal(app, err)
	}
	t.pushed[app] = enc
	return nil
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
func (t *RouterTraffic) Check(ctx context.Context, app string, cfg *router.AppConfig) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.load(ctx); err != nil {
		return err
	}
	tbl := *t.table
	tbl.Apps = maps.Clone(t.table.Apps)
	if cfg == nil {
		delete(tbl.Apps, app)
	} else {
		tbl.Apps[app] = cfg
	}
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
		w := fs.Windows[name]
		out[fleet] = FleetMetrics{
			Revision: fs.Revision, Weight: fs.Weight, Fenced: fs.Fenced, Test: fs.Test, Healthy: fs.Healthy, Targets: fs.Targets,
			Requests: w.Requests, Errors: w.ByClass["5xx"],
			P50: seconds(w.P50), P95: seconds(w.P95), P99: seconds(w.P99), Latency: w.Latency,
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
