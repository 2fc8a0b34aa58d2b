package engine

import (
	"context"
	"strconv"
	"time"

	"bluegreen/internal/router"
	"bluegreen/internal/spec"
)

// Traffic is the data plane as the engine sees it: it asks for a state of
// an app (weights per fleet, the test fleet, fenced fleets) and reads
// per-fleet metrics. The built-in router is one implementation; on
// Kubernetes the same requests become Service and route changes.
type Traffic interface {
	// Route makes the data plane serve app as cfg says; nil removes the app.
	Route(ctx context.Context, app string, cfg *router.AppConfig) error
	// Metrics reads the app's fleets over the last window.
	Metrics(ctx context.Context, app string, window time.Duration) (map[string]FleetMetrics, error)
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
}

// ErrorRate is the share of 5xx answers (0 without requests).
func (m FleetMetrics) ErrorRate() float64 {
	if m.Requests == 0 {
		return 0
	}
	return float64(m.Errors) / float64(m.Requests)
}

// fleetRoute is what one fleet should look like in the router.
type fleetRoute struct {
	slot       string
	generation int64
	weight     int
	targets    []string
	fenced     bool
}

// appRoute builds the router's view of an app from its spec (the router
// section and health check) and its fleets. testFleet may be "".
func appRoute(s *spec.Spec, fleets []fleetRoute, testFleet string) *router.AppConfig {
	if len(fleets) == 0 {
		return nil
	}
	cfg := &router.AppConfig{
		Production:    s.Router.Production,
		Test:          s.Router.Test,
		Hosts:         append([]string(nil), s.Router.Hosts...),
		Fleets:        map[string]*router.FleetConfig{},
		TestFleet:     testFleet,
		Sticky:        s.Router.Sticky,
		PreviewHeader: s.Router.PreviewHeader,
		Health: &router.HealthConfig{
			Path:               s.Health.Path,
			Interval:           router.Duration(s.Health.Interval.D()),
			Timeout:            router.Duration(s.Health.Timeout.D()),
			HealthyThreshold:   s.Health.HealthyThreshold,
			UnhealthyThreshold: s.Health.UnhealthyThreshold,
		},
	}
	for _, f := range fleets {
		fc := &router.FleetConfig{
			Weight:   f.weight,
			Targets:  append([]string(nil), f.targets...),
			Revision: strconv.FormatInt(f.generation, 10),
			Fenced:   f.fenced,
		}
		if len(fc.Targets) == 0 {
			// A fleet with no target yet cannot take weight.
			fc.Weight = 0
		}
		cfg.Fleets[f.slot] = fc
	}
	return cfg
}
