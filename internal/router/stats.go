package router

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Snapshot is what the router has seen, per app and fleet: the numbers the
// deployment engine's checks read.
type Snapshot struct {
	Generation uint64    `json:"generation"`
	Time       time.Time `json:"time"`
	Unrouted   uint64    `json:"unrouted"` // requests no fleet could take (unknown host, nothing healthy)
	// Window names the extra window a query asked for, as a key of every Windows map.
	Window string                 `json:"window,omitempty"`
	Apps   map[string]AppSnapshot `json:"apps"`
}

// AppSnapshot holds the fleets of one app.
type AppSnapshot struct {
	Fleets map[string]FleetSnapshot `json:"fleets"`
	// Held counts the production requests a pause holds now.
	Held int64 `json:"held,omitempty"`
}

// FleetSnapshot is one fleet's state and traffic.
type FleetSnapshot struct {
	Revision  string                 `json:"revision,omitempty"`
	Weight    int                    `json:"weight"`
	Fenced    bool                   `json:"fenced"`
	Test      bool                   `json:"test"`            // served by the test listener
	Healthy   int                    `json:"healthy_targets"` // targets taking new requests (0 when fenced)
	InFlight  int64                  `json:"in_flight"`
	Streaming int64                  `json:"streaming"`
	Upgraded  int64                  `json:"upgraded"`
	Windows   map[string]WindowStats `json:"windows"`
	Totals    Totals                 `json:"totals"`
	Targets   []TargetSnapshot       `json:"targets"`
}

// TargetSnapshot is one target's state and traffic.
type TargetSnapshot struct {
	Address string `json:"address"`
	Healthy bool   `json:"healthy"`
	// Checks counts the active health checks completed since the target
	// appeared: while it is 0, Healthy is trust, not a verdict.
	Checks uint64 `json:"checks"`
	// LastCheck says what the last active check saw ("GET /healthz
	// answered 404 Not Found: …", or why there was no answer).
	LastCheck string `json:"last_check,omitempty"`
	// LastCheckPassed says whether that check passed.
	LastCheckPassed bool                   `json:"last_check_passed,omitempty"`
	Suspect         bool                   `json:"suspect"`
	Fenced          bool                   `json:"fenced"`
	InFlight        int64                  `json:"in_flight"`
	Streaming       int64                  `json:"streaming"`
	Upgraded        int64                  `json:"upgraded"`
	Windows         map[string]WindowStats `json:"windows"`
	Totals          Totals                 `json:"totals"`
}

// Stats takes a snapshot of every fleet of the running table.
func (r *Router) Stats() Snapshot {
	s, _ := r.StatsFor(StatsQuery{})
	return s
}

// StatsQuery narrows or extends a snapshot.
type StatsQuery struct {
	// Window, when set, adds one window of this length (whole seconds, 1s to 5m)
	// to the fixed ones, named by WindowName. A deployment's checks ask for a
	// window matching their own interval, so that green and blue are compared
	// over the same seconds.
	Window time.Duration
	// App, when set, limits the snapshot to that app.
	App string
}

// Bounds of a query's window: the slots hold one second each, five minutes in all.
const (
	MinWindow = time.Second
	MaxWindow = windowSlots * time.Second
)

// ParseWindow reads a window length such as "5s", "30s" or "2m" and checks that
// the per-second slots can answer it.
func ParseWindow(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (use a form such as 5s, 30s, 2m)", s)
	}
	if err := checkWindow(d); err != nil {
		return 0, err
	}
	return d, nil
}

func checkWindow(d time.Duration) error {
	if d < MinWindow || d > MaxWindow {
		return fmt.Errorf("%s is out of range %s..%s", d, MinWindow, WindowName(MaxWindow))
	}
	if d%time.Second != 0 {
		return fmt.Errorf("%s is not a whole number of seconds", d)
	}
	return nil
}

// WindowName is the key of a window in a snapshot: whole minutes as "2m",
// whole seconds as "30s", and both as "1m30s", the form of the fixed windows.
func WindowName(d time.Duration) string {
	secs := int64(d / time.Second)
	m, s := secs/60, secs%60
	switch {
	case m == 0:
		return fmt.Sprintf("%ds", s)
	case s == 0:
		return fmt.Sprintf("%dm", m)
	default:
		return fmt.Sprintf("%dm%ds", m, s)
	}
}

// StatsFor takes a snapshot as the query asks. It fails with ErrNotInTable for
// an app the running table does not have.
func (r *Router) StatsFor(q StatsQuery) (Snapshot, error) {
	if q.Window != 0 {
		if err := checkWindow(q.Window); err != nil {
			return Snapshot{}, fmt.Errorf("window: %w", err)
		}
	}
	tbl := r.table.Load()
	if q.App != "" && tbl.apps[q.App] == nil {
		return Snapshot{}, fmt.Errorf("app %q: %w", q.App, ErrNotInTable)
	}
	now := time.Now()
	ns := now.UnixNano()
	s := Snapshot{Generation: tbl.gen, Time: now, Unrouted: r.unrouted.Load(), Apps: map[string]AppSnapshot{}}
	if q.Window != 0 {
		s.Window = WindowName(q.Window)
	}
	for name, a := range tbl.apps {
		if q.App != "" && name != q.App {
			continue
		}
		as := AppSnapshot{Fleets: map[string]FleetSnapshot{}, Held: a.gate.held.Load()}
		for _, f := range a.fleets {
			fs := FleetSnapshot{
				Revision: f.revision, Weight: f.weight, Fenced: f.fenced, Test: a.testFleet == f,
				InFlight: f.stats.inflight.Load(), Streaming: f.stats.streaming.Load(), Upgraded: f.stats.upgraded.Load(),
				Windows: windows(f.stats, now, q.Window, true), Totals: f.stats.totals(),
			}
			for i, t := range f.targets {
				saw, passed := t.lastSeen()
				ts := TargetSnapshot{
					Address: t.addr, Healthy: t.healthy.Load(), Checks: t.checks.Load(), LastCheck: saw, LastCheckPassed: passed, Suspect: !t.usable(ns) && t.healthy.Load(), Fenced: f.fenced || f.fencedT[i],
					InFlight: t.stats.inflight.Load(), Streaming: t.stats.streaming.Load(), Upgraded: t.stats.upgraded.Load(),
					Windows: windows(t.stats, now, q.Window, false), Totals: t.stats.totals(),
				}
				if f.takes(i, ns) {
					fs.Healthy++
				}
				fs.Targets = append(fs.Targets, ts)
			}
			as.Fleets[f.name] = fs
		}
		s.Apps[name] = as
	}
	return s, nil
}

// windows computes the fixed windows and, when extra is set, one more,
// with its latency histogram when hist is set (a fleet's: the histograms
// of targets are not needed, and would make a snapshot much larger).
func windows(m *metrics, now time.Time, extra time.Duration, hist bool) map[string]WindowStats {
	out := make(map[string]WindowStats, len(Windows)+1)
	for _, w := range Windows {
		out[w.Name] = m.window(now, w.Dur)
	}
	switch {
	case extra != 0 && hist:
		out[WindowName(extra)] = m.windowHist(now, extra)
	case extra != 0:
		out[WindowName(extra)] = m.window(now, extra)
	}
	return out
}

// DrainRequest fences a fleet, or one target of it, and waits for its work to end.
type DrainRequest struct {
	App     string   `json:"app"`
	Fleet   string   `json:"fleet"`
	Target  string   `json:"target,omitempty"`
	Timeout Duration `json:"timeout"`
}

// DrainReport says how a drain ended. The counts are what was still open at the
// deadline and was closed then; all zero when everything finished in time.
type DrainReport struct {
	App      string   `json:"app"`
	Fleet    string   `json:"fleet"`
	Target   string   `json:"target,omitempty"`
	Waited   Duration `json:"waited"`
	Complete bool     `json:"complete"`
	// Spread is the period over which what was open at the deadline was
	// closed, one connection after another (the app's drain_spread).
	Spread          Duration `json:"spread,omitempty"`
	OpenRequests    int64    `json:"open_requests"`
	OpenStreams     int64    `json:"open_streams"`
	OpenConnections int64    `json:"open_connections"`
}

// ErrNotInTable reports a drain of an app, fleet or target the table does not have.
var ErrNotInTable = errors.New("not in the routing table")

// drainPoll is how often a drain looks at what is still in flight.
const drainPoll = 20 * time.Millisecond

// Drain fences the fleet (or target) so it takes no new requests, waits until its
// in-flight requests, streams and upgraded connections are done or the timeout
// passes, and then closes whatever is left: at once, or one after another
// over the app's drain_spread, so that its clients do not all reconnect to
// the other fleet in the same instant.
func (r *Router) Drain(ctx context.Context, req DrainRequest) (DrainReport, error) {
	rep := DrainReport{App: req.App, Fleet: req.Fleet, Target: req.Target}
	if req.Timeout < 0 {
		return rep, errors.New("drain timeout must not be negative")
	}
	r.mu.Lock()
	// The fence changes one app: a copy of it goes into a table that shares
	// every other app with the running one, and only it is compiled again,
	// so that draining with a thousand apps in the table does not cost them all.
	cur := r.table.Load().cfg
	if cur.Apps[req.App] == nil {
		r.mu.Unlock()
		return rep, fmt.Errorf("app %q: %w", req.App, ErrNotInTable)
	}
	ac := cur.Apps[req.App].clone()
	cfg := *cur
	cfg.Apps = maps.Clone(cur.Apps)
	cfg.Apps[req.App] = ac
	fc := ac.Fleets[req.Fleet]
	if fc == nil {
		r.mu.Unlock()
		return rep, fmt.Errorf("fleet %q of app %q: %w", req.Fleet, req.App, ErrNotInTable)
	}
	spread := ac.DrainSpread.D()
	addrs := fc.Targets
	if req.Target != "" {
		if !slices.Contains(fc.Targets, req.Target) {
			r.mu.Unlock()
			return rep, fmt.Errorf("target %s of fleet %q of app %q: %w", req.Target, req.Fleet, req.App, ErrNotInTable)
		}
		addrs = []string{req.Target}
		if !slices.Contains(fc.FencedTargets, req.Target) {
			fc.FencedTargets = append(fc.FencedTargets, req.Target)
		}
	} else {
		fc.Fenced = true
	}
	if _, err := r.applyLocked(&cfg, map[string]bool{req.App: true}); err != nil {
		r.mu.Unlock()
		return rep, fmt.Errorf("fencing: %w", err)
	}
	var targets []*target
	for _, addr := range addrs {
		targets = append(targets, r.targets[req.App+"/"+req.Fleet+"/"+fc.Revision+"/"+addr])
	}
	// Work still running on the fleet's earlier revisions is drained with it.
	for _, t := range r.retiring {
		if t.appName() == req.App && t.fleet == req.Fleet && slices.Contains(addrs, t.addr) {
			targets = append(targets, t)
		}
	}
	r.mu.Unlock()

	start := time.Now()
	deadline := start.Add(req.Timeout.D())
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		var open, streams, upgraded int64
		for _, t := range targets {
			open += t.stats.inflight.Load()
			streams += t.stats.streaming.Load()
			upgraded += t.stats.upgraded.Load()
		}
		now := time.Now()
		if open == 0 {
			rep.Complete, rep.Waited = true, Duration(now.Sub(start))
			return rep, nil
		}
		if !now.Before(deadline) {
			rep.OpenConnections = upgraded
			rep.OpenStreams = streams
			rep.OpenRequests = open - upgraded
			if spread > 0 {
				rep.Spread = Duration(spread)
				closeSpread(ctx, targets, spread)
			}
			for _, t := range targets {
				t.closeAll()
			}
			rep.Waited = Duration(time.Since(start))
			r.log.Warn("drain deadline closed open work", "app", req.App, "fleet", req.Fleet, "target", req.Target,
				"requests", rep.OpenRequests, "streams", rep.OpenStreams, "connections", rep.OpenConnections, "spread", spread.String())
			return rep, nil
		}
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-tick.C:
		}
	}
}

// closeSpread closes the open connections of targets one after another over
// spread, evenly; it stops early when ctx ends, leaving the rest to the
// caller.
func closeSpread(ctx context.Context, targets []*target, spread time.Duration) {
	var closers []func()
	for _, t := range targets {
		closers = append(closers, t.openClosers()...)
	}
	begin := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i, closeOne := range closers {
		if d := time.Until(begin.Add(spreadDelay(i, len(closers), spread))); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		closeOne()
	}
}
