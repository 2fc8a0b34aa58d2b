package engine

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"bluegreen/internal/params"
	"bluegreen/internal/router"
	"bluegreen/internal/spec"
)

// Traffic is the data plane as the engine sees it: it asks for a state of
// an app (weights per fleet, the test fleet, fenced fleets) and reads
// per-fleet metrics. The built-in router is one implementation; on
// Kubernetes the same requests become Service and route changes.
type Traffic interface {
	// Route makes the data plane serve app as routes say, in one step:
	// every router app of app (the app's own name, and APP.* for the
	// services of a stack) is replaced by routes; nil removes them all. A
	// state the data plane will never take (a host another app claims) is
	// a *PermanentError.
	Route(ctx context.Context, app string, routes Routes) error
	// Check says whether Route would take routes beside the other apps as
	// they are, without changing anything (a *PermanentError when it would
	// not).
	Check(ctx context.Context, app string, routes Routes) error
	// Metrics reads one router app's fleets over the last window.
	Metrics(ctx context.Context, app string, window time.Duration) (map[string]FleetMetrics, error)
	// AppMetrics reads every router app of app (see Route) over the last
	// window, by router app and fleet.
	AppMetrics(ctx context.Context, app string, window time.Duration) (map[string]map[string]FleetMetrics, error)
	// Drain fences a fleet, waits up to timeout for its work to end, then
	// closes what is left and reports it.
	Drain(ctx context.Context, app, fleet string, timeout time.Duration) (router.DrainReport, error)
}

// FleetMetrics is one fleet's health and traffic over a window.
type FleetMetrics struct {
	Revision string
	// Weight is the fleet's share of production traffic in percent; Fenced:
	// it takes no new requests; Test: the test listener serves it.
	Weight int
	Fenced bool
	Test   bool
	// Healthy counts the targets taking new requests.
	Healthy int
	Targets []router.TargetSnapshot
	// Requests, Errors (5xx) and the latency percentiles are over the window.
	Requests uint64
	Errors   uint64
	P50      time.Duration
	P95      time.Duration
	P99      time.Duration
	// Latency is the window's latency histogram, for the judge (empty
	// from a router that does not give one).
	Latency []router.LatencyBucket `json:",omitempty"`
}

// ErrorRate is the share of 5xx answers (0 without requests).
func (m FleetMetrics) ErrorRate() float64 {
	if m.Requests == 0 {
		return 0
	}
	return float64(m.Errors) / float64(m.Requests)
}

// Roles of fleets, as people read and type them: blue is the live fleet,
// green the candidate.
const (
	RoleBlue  = "blue"
	RoleGreen = "green"
)

// Routes are the router apps of an app, by name.
type Routes map[string]*router.AppConfig

// fleetRoute is what one fleet should look like in one router app: the
// fleet's instances of one service. Its health check is its own
// revision's.
type fleetRoute struct {
	slot       string
	role       string
	generation int64
	weight     int
	targets    []string
	fenced     bool
	health     spec.Health
}

// fleetPlan is what one fleet of an app should look like in the router,
// every service of it.
type fleetPlan struct {
	rev    *revision
	slot   string
	role   string
	weight int
	fenced bool
	state  fleetState
}

// planFleet is the plan of a fleet of rev in slot, whose instances are fs.
func planFleet(rev *revision, slot, role string, weight int, fs fleetState, fenced bool) fleetPlan {
	return fleetPlan{rev: rev, slot: slot, role: role, weight: weight, fenced: fenced, state: fs}
}

// part is the fleet's route in the router app of member m.
func (p fleetPlan) part(m spec.Member) fleetRoute {
	return fleetRoute{slot: p.slot, role: p.role, generation: p.rev.Generation, weight: p.weight,
		targets: p.state.of(m.Name).targets(), fenced: p.fenced, health: m.Health}
}

// appRoute builds the router's view of one public route of an app. stack
// is the spec whose stickiness and preview header are in force (the live
// revision's until green becomes live); front is the member whose
// production settings (listener, hosts, path) are in force, test the member
// whose test listener and hosts serve the test fleet. Each fleet is checked
// with its own revision's health section. testFleet may be "".
func appRoute(stack *spec.Spec, front, test spec.Member, fleets []fleetRoute, testFleet string) *router.AppConfig {
	if len(fleets) == 0 {
		return nil
	}
	cfg := &router.AppConfig{
		Production:    front.Router.Production,
		Test:          test.Router.Test,
		Hosts:         append([]string(nil), front.Router.Hosts...),
		Fleets:        map[string]*router.FleetConfig{},
		TestFleet:     testFleet,
		Sticky:        stack.Router.Sticky,
		PreviewHeader: stack.Router.PreviewHeader,
		Health:        healthConfig(front.Health),
		AccessLog:     stack.Router.AccessLog,
		MaxBody:       stack.Router.MaxBodyBytes(),
		Timeout:       router.Duration(stack.Router.Timeout.D()),
		DrainSpread:   router.Duration(stack.Retire.DrainSpread.D()),
	}
	if p := front.Router.Path; p != "" && p != spec.DefaultPath {
		cfg.Path, cfg.StripPrefix = p, front.Router.StripPrefix
	}
	if !slices.Equal(test.Router.Hosts, front.Router.Hosts) {
		cfg.TestHosts = append([]string(nil), test.Router.Hosts...)
		if len(cfg.TestHosts) == 0 {
			cfg.TestHosts = []string{"*"}
		}
	}
	for _, f := range fleets {
		fc := &router.FleetConfig{
			Weight:   f.weight,
			Targets:  append([]string(nil), f.targets...),
			Revision: strconv.FormatInt(f.generation, 10),
			Fenced:   f.fenced,
			Role:     f.role,
			Health:   healthConfig(f.health),
		}
		if len(fc.Targets) == 0 {
			// A fleet with no target yet cannot take weight.
			fc.Weight = 0
		}
		cfg.Fleets[f.slot] = fc
	}
	return cfg
}

func healthConfig(h spec.Health) *router.HealthConfig {
	return &router.HealthConfig{
		Path:               h.Path,
		Interval:           router.Duration(h.Interval.D()),
		Timeout:            router.Duration(h.Timeout.D()),
		HealthyThreshold:   h.HealthyThreshold,
		UnhealthyThreshold: h.UnhealthyThreshold,
	}
}

// PermanentError is an error that trying again will not mend, such as a
// routing table the router refuses: the deployment ends on it at once.
type PermanentError struct{ Err error }

func (p *PermanentError) Error() string { return p.Err.Error() }
func (p *PermanentError) Unwrap() error { return p.Err }

// previewSecret is the value of front's preview secret param, if its spec
// names one, read from the params its revision pinned.
func (e *Engine) previewSecret(ctx context.Context, front *revision) (string, error) {
	name := front.Spec.Router.PreviewSecretParam
	if name == "" {
		return "", nil
	}
	env, err := e.opts.Params.Resolve(ctx, front.Params)
	if err != nil {
		return "", fmt.Errorf("revision %d of app %s: %w", front.Generation, front.App, err)
	}
	v, ok := env[params.EnvName(name)]
	if !ok {
		return "", &PermanentError{Err: fmt.Errorf("revision %d of app %s: router.preview_secret_param %s is not among its pinned params", front.Generation, front.App, name)}
	}
	return v.Reveal(), nil
}
