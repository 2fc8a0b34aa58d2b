// Package engine is the deployment state machine: it takes an app from its
// live revision to a new one through Provisioning, Validating, TestTraffic,
// AwaitingApproval, Shifting, Baking and Retiring, or back through
// RollingBack, on a Platform (where instances run) and a Traffic (who gets
// requests).
//
// Every transition is written to the store, with its deadlines as absolute
// times, before the engine acts on it, and every step is idempotent: a
// restarted engine reads the active deployments and carries each on from
// where it stood. The strategy itself is a pure function (NextPlan).
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"bluegreen/internal/artifact"
	"bluegreen/internal/metrics"
	"bluegreen/internal/params"
	"bluegreen/internal/platform"
	"bluegreen/internal/platform/idlock"
	"bluegreen/internal/platform/runas"
	"bluegreen/internal/store"
)

// Options are the engine's parts.
type Options struct {
	Store   *store.Store
	Params  *params.Store
	Bundles *artifact.Store
	// Platform runs instances; a *platform.Set when the server offers
	// several (processes and containers).
	Platform platform.Platform
	Traffic  Traffic
	// Services switches the Services of apps whose traffic goes through
	// them (nil: such apps are refused).
	Services ServiceSwitcher
	// RevisionsDir holds the unpacked revisions, one directory per
	// app and generation.
	RevisionsDir string
	Logger       *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Tick is how often an active deployment looks at its instances and
	// their health between deadlines (500ms when zero).
	Tick time.Duration
	// MaintainEvery is how often apps without an active deployment have
	// their live fleet checked and dead instances replaced (5s when zero).
	MaintainEvery time.Duration
	// RunAs decides which user each app's instances and hooks run as, and
	// refuses the revisions whose run_as it cannot arrange. Nil runs them
	// as the server itself, for tests that have no other users.
	RunAs *runas.Policy
	// Secrets are values hidden in hook and command-check output besides
	// the secure params (the server's admin token).
	Secrets []string
	// Metrics counts phases, outcomes, rollbacks, checks and hooks (nil:
	// nothing is counted).
	Metrics *metrics.Metrics
	// Prometheus is the server's Prometheus (its base URL), asked by
	// prometheus check rules of specs that name none in checks.prometheus.
	Prometheus string
	// CertDir is where the server's ACME client keeps the certificates of
	// apps whose router.tls asks for acme (HOST.crt and HOST.key).
	CertDir string
}

// Engine runs deployments.
type Engine struct {
	opts  Options
	modes serviceModes
	st    *store.Store
	plat  *platform.Set
	log   *slog.Logger
	now   func() time.Time

	mu      sync.Mutex
	runners map[string]*runner // by deployment ID
	appMu   map[string]*sync.Mutex
	// usesPlat caches the platforms each app's revisions name (see
	// platformsOf).
	usesPlat map[string][]string
	// revs are parsed revisions by "app/generation" (see loadRevision).
	revs map[string]*revision
	// unpacking serialises the work on one revision's directory.
	unpacking idlock.Locks
	// addrs are the internal addresses of the services of stacks.
	addrs  addressBook
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// gateMu serialises pauses and maintenance (see gate.go).
	gateMu sync.Mutex
}

type runner struct {
	app  string
	wake chan struct{}
	// interrupt cancels the step in progress (a hook, a drain) so that an
	// abort is acted on at once; nil between steps. Guarded by Engine.mu.
	interrupt context.CancelCauseFunc
}

// errInterrupted is the cause of a step cancelled by an abort.
var errInterrupted = errors.New("interrupted by a request")

// New checks the options and returns an engine that does nothing until Start.
func New(opts Options) (*Engine, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("engine: no store")
	case opts.Params == nil:
		return nil, errors.New("engine: no params store")
	case opts.Bundles == nil:
		return nil, errors.New("engine: no bundle store")
	case opts.Platform == nil:
		return nil, errors.New("engine: no platform")
	case opts.Traffic == nil:
		return nil, errors.New("engine: no traffic")
	case opts.RevisionsDir == "":
		return nil, errors.New("engine: no revisions directory")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Tick <= 0 {
		opts.Tick = 500 * time.Millisecond
	}
	if opts.MaintainEvery <= 0 {
		opts.MaintainEvery = 5 * time.Second
	}
	set, ok := opts.Platform.(*platform.Set)
	if !ok {
		set = platform.NewSet(opts.Platform)
	}
	return &Engine{
		opts:     opts,
		st:       opts.Store,
		plat:     set,
		log:      opts.Logger,
		now:      opts.Now,
		runners:  map[string]*runner{},
		appMu:    map[string]*sync.Mutex{},
		usesPlat: map[string][]string{},
		revs:     map[string]*revision{},
	}, nil
}

// Start adopts what runs (instances and routes of every app), resumes every
// active deployment where it stood, and keeps live fleets whole. It returns
// once the state is rebuilt; the work goes on until Close.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.ctx != nil {
		e.mu.Unlock()
		return errors.New("engine: already started")
	}
	e.ctx, e.cancel = context.WithCancel(context.WithoutCancel(ctx))
	e.mu.Unlock()

	e.killLeftoverGroups()
	apps, err := e.st.ListApps(ctx)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	active, err := e.st.ListDeployments(ctx, "", true, 0)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	e.stopStrays(ctx, apps)
	if err := e.restoreGates(ctx); err != nil {
		// Every push of an app's routes carries its gate all the same.
		e.log.Error("giving the router the apps' pauses and maintenance", "err", err)
	}
	busy := map[string]bool{}
	for _, d := range active {
		busy[d.App] = true
	}
	for _, a := range apps {
		if busy[a.Name] {
			continue // the deployment's runner owns the app's fleets
		}
		if err := e.maintain(ctx, a.Name); err != nil {
			e.log.Error("adopting the live fleet", "app", a.Name, "err", err)
		}
	}
	for _, d := range active {
		e.log.Info("resuming deployment", "app", d.App, "deployment", d.ID, "phase", d.Phase)
		e.spawn(d)
	}
	e.wg.Add(1)
	go e.maintainLoop()
	return nil
}

// Close stops the engine's work. It never stops instances or the router:
// a restarted engine adopts them.
func (e *Engine) Close() {
	e.mu.Lock()
	cancel := e.cancel
	e.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	e.wg.Wait()
}

// lockApp serialises work on one app's fleets between the maintenance
// loop and a deployment's runner.
func (e *Engine) lockApp(app string) func() {
	e.mu.Lock()
	m := e.appMu[app]
	if m == nil {
		m = &sync.Mutex{}
		e.appMu[app] = m
	}
	e.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// spawn starts the runner of an active deployment, once.
func (e *Engine) spawn(d store.Deployment) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx == nil || e.ctx.Err() != nil {
		return
	}
	if _, ok := e.runners[d.ID]; ok {
		return
	}
	r := &runner{app: d.App, wake: make(chan struct{}, 1)}
	e.runners[d.ID] = r
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer func() {
			e.mu.Lock()
			delete(e.runners, d.ID)
			e.mu.Unlock()
		}()
		e.run(e.ctx, d.ID, r)
	}()
}

// wake makes a deployment's runner look at its state now.
func (e *Engine) wake(id string) {
	e.mu.Lock()
	r := e.runners[id]
	e.mu.Unlock()
	if r != nil {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// interrupt cancels the step a deployment's runner is in, and wakes it.
func (e *Engine) interrupt(id string) {
	e.mu.Lock()
	r := e.runners[id]
	if r != nil && r.interrupt != nil {
		r.interrupt(errInterrupted)
	}
	e.mu.Unlock()
	e.wake(id)
}

// maintainLoop keeps the live fleets of apps without a deployment whole.
func (e *Engine) maintainLoop() {
	defer e.wg.Done()
	t := time.NewTicker(e.opts.MaintainEvery)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		apps, err := e.st.ListApps(e.ctx)
		if err != nil {
			e.log.Error("listing apps", "err", err)
			continue
		}
		// One query for every app's deployment; maintain looks again, under
		// the app's lock, at an app that was idle here.
		active, err := e.st.ListDeployments(e.ctx, "", true, 0)
		if err != nil {
			e.log.Error("listing active deployments", "err", err)
			continue
		}
		busy := make(map[string]bool, len(active))
		for _, d := range active {
			busy[d.App] = true
		}
		for _, a := range apps {
			if busy[a.Name] {
				continue
			}
			if err := e.maintain(e.ctx, a.Name); err != nil && e.ctx.Err() == nil {
				e.log.Error("keeping the live fleet", "app", a.Name, "err", err)
			}
		}
	}
}

// revisionDir is where a revision's bundle is unpacked.
func (e *Engine) revisionDir(app string, generation int64) string {
	return filepath.Join(e.opts.RevisionsDir, app, fmt.Sprint(generation))
}
