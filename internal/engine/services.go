package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"bluegreen/internal/platform"
	"bluegreen/internal/router"
)

// ServiceSwitcher points an app's Services at fleets and checks that their
// endpoints followed: the Kubernetes platform, for apps whose production
// traffic goes through Services (kubernetes.traffic: service).
type ServiceSwitcher interface {
	SwitchServices(ctx context.Context, app string, sel platform.ServiceSelection) error
}

// switchTimeout bounds the wait for a Service's endpoints to follow a
// switch; a switch that takes longer is tried again at the next look.
const switchTimeout = 30 * time.Second

// pushRoutes gives the router the app's routes and, for an app whose
// traffic goes through Services, points the Services at the same fleets:
// production at the fleet with the traffic, the test Service at the fleet
// the test listener serves. It returns once the Services' endpoints show
// the change, so that nothing that follows (test hooks, a drain) runs
// before the cluster carries the traffic as the engine believes.
func (e *Engine) pushRoutes(ctx context.Context, app string, routes Routes) error {
	if err := e.opts.Traffic.Route(ctx, app, routes); err != nil {
		return err
	}
	cfg := routes[app]
	if cfg == nil {
		return nil
	}
	svc, err := e.serviceTraffic(ctx, app, cfg)
	if err != nil || !svc {
		return err
	}
	if e.opts.Services == nil {
		return &PermanentError{Err: fmt.Errorf("app %s: kubernetes.traffic: service needs the Kubernetes platform, which this server does not have", app)}
	}
	err = e.opts.Services.SwitchServices(ctx, app, selectionOf(cfg))
	if errors.Is(err, platform.ErrRefused) {
		return &PermanentError{Err: err}
	}
	return err
}

// selectionOf is what the Services of an app select for its router config.
func selectionOf(cfg *router.AppConfig) platform.ServiceSelection {
	sel := platform.ServiceSelection{Test: cfg.TestFleet, Want: map[string]int{}, Timeout: switchTimeout}
	best := 0
	for slot, f := range cfg.Fleets {
		sel.Want[slot] = len(f.Targets)
		switch f.Role {
		case RoleBlue:
			sel.Blue = slot
		case RoleGreen:
			sel.Green = slot
		}
		if f.Weight > best || (f.Weight == best && best > 0 && f.Role == RoleBlue) {
			best, sel.Production = f.Weight, slot
		}
	}
	return sel
}

// serviceTraffic says whether any revision in cfg sends its traffic
// through Services.
func (e *Engine) serviceTraffic(ctx context.Context, app string, cfg *router.AppConfig) (bool, error) {
	for _, f := range cfg.Fleets {
		gen, err := strconv.ParseInt(f.Revision, 10, 64)
		if err != nil {
			continue
		}
		svc, err := e.revisionServiceTraffic(ctx, app, gen)
		if err != nil || svc {
			return svc, err
		}
	}
	return false, nil
}

// serviceModes remembers, per app and revision, whether the revision's
// traffic goes through Services: revisions do not change.
type serviceModes struct {
	mu sync.Mutex
	m  map[string]bool
}

func (e *Engine) revisionServiceTraffic(ctx context.Context, app string, gen int64) (bool, error) {
	key := app + "/" + strconv.FormatInt(gen, 10)
	e.modes.mu.Lock()
	v, ok := e.modes.m[key]
	e.modes.mu.Unlock()
	if ok {
		return v, nil
	}
	rev, err := e.loadRevision(ctx, app, gen)
	if err != nil {
		return false, err
	}
	v = rev.Spec.ServiceTraffic()
	e.modes.mu.Lock()
	if e.modes.m == nil {
		e.modes.m = map[string]bool{}
	}
	e.modes.m[key] = v
	e.modes.mu.Unlock()
	return v, nil
}

// waitDrainEnd keeps a fleet that Services no longer select running until
// the drain's deadline: requests that proxies in the cluster still send it
// (their view of the endpoints lags) and those in flight get that long.
func (e *Engine) waitDrainEnd(ctx context.Context, end time.Time) error {
	left := end.Sub(e.now())
	if left <= 0 {
		return nil
	}
	t := time.NewTimer(left)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
