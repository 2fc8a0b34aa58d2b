package engine

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"bluegreen/internal/router"
	"bluegreen/internal/spec"
)

// isStack says whether either fleet of the deployment is a stack, whose
// routes are several router apps.
func (s *state) isStack() bool {
	return s.green.Spec.IsStack() || s.blue != nil && s.blue.Spec.IsStack()
}

// metricsOf reads the router's view of every router app of the
// deployment's app over the last window, by router app and fleet.
func (e *Engine) metricsOf(ctx context.Context, s *state, window time.Duration) (map[string]map[string]FleetMetrics, error) {
	return e.appMetrics(ctx, s.d.App, s.isStack(), window)
}

// appMetrics is metricsOf for an app; one of a single service has one
// router app, named as the app.
func (e *Engine) appMetrics(ctx context.Context, app string, stack bool, window time.Duration) (map[string]map[string]FleetMetrics, error) {
	if !stack {
		m, err := e.opts.Traffic.Metrics(ctx, app, window)
		if err != nil {
			return nil, err
		}
		return map[string]map[string]FleetMetrics{app: m}, nil
	}
	return e.opts.Traffic.AppMetrics(ctx, app, window)
}

// publicKey is the name under which front routes the public service m of
// fleet f (see routes).
func publicKey(f fleet, m string, front *spec.Spec) string {
	if key, ok := counterpart(m, f.rev.Spec, front); ok {
		return key
	}
	return m
}

// targetsOf is the router's view of the instances of service m of fleet
// f: from the service's own address for a stack (every instance of it is
// there, once), from its public route otherwise.
func targetsOf(all map[string]map[string]FleetMetrics, app string, f fleet, m string, front *spec.Spec) []router.TargetSnapshot {
	if f.rev.Spec.IsStack() {
		return all[internalName(app, m, f.slot)][f.slot].Targets
	}
	return all[publicName(app, publicKey(f, m, front))][f.slot].Targets
}

// memberMetrics is what the router saw of service m of fleet f: its public
// route, its own address and its live address together, so that the calls
// of the stack's other services count as much as requests from outside.
// ok is false when the router has none of them.
func memberMetrics(all map[string]map[string]FleetMetrics, app string, f fleet, m spec.Member, front *spec.Spec) (FleetMetrics, bool) {
	var parts []FleetMetrics
	if m.Public {
		if fm, ok := all[publicName(app, publicKey(f, m.Name, front))][f.slot]; ok {
			parts = append(parts, fm)
		}
	}
	if f.rev.Spec.IsStack() {
		for _, name := range []string{internalName(app, m.Name, f.slot), internalName(app, m.Name, liveAddress)} {
			if fm, ok := all[name][f.slot]; ok {
				parts = append(parts, fm)
			}
		}
	}
	if len(parts) == 0 {
		return FleetMetrics{}, false
	}
	return sumMetrics(parts), true
}

// sumMetrics adds the numbers of one fleet seen through several router
// apps. Requests and errors add up; a latency percentile is the mean of
// the parts' percentiles weighted by their requests (the router keeps
// percentiles per router app, not the requests' latencies), and the
// latency histograms (the judge's) merge bucket by bucket; weight, test and
// health are the first part's (the public route's, when there is one).
func sumMetrics(parts []FleetMetrics) FleetMetrics {
	out := parts[0]
	out.Requests, out.Errors, out.Latency = 0, 0, nil
	var p50, p95, p99 float64
	buckets := map[[2]float64]int{} // the histograms' buckets, merged: by bounds, into out.Latency
	for _, p := range parts {
		out.Requests += p.Requests
		out.Errors += p.Errors
		w := float64(p.Requests)
		p50 += w * float64(p.P50)
		p95 += w * float64(p.P95)
		p99 += w * float64(p.P99)
		for _, b := range p.Latency {
			key := [2]float64{b.From, b.To}
			if i, ok := buckets[key]; ok {
				out.Latency[i].Count += b.Count
				continue
			}
			buckets[key] = len(out.Latency)
			out.Latency = append(out.Latency, b)
		}
	}
	slices.SortFunc(out.Latency, func(a, b router.LatencyBucket) int { return cmp.Compare(a.From, b.From) })
	if out.Requests > 0 {
		n := float64(out.Requests)
		out.P50, out.P95, out.P99 = time.Duration(p50/n), time.Duration(p95/n), time.Duration(p99/n)
	}
	return out
}

// stackSummary says what a stack's fleet runs: "web 2 instances, api 1
// instance", in dependency order.
func stackSummary(f fleet) string {
	var parts []string
	for _, m := range f.rev.Spec.Members() {
		parts = append(parts, fmt.Sprintf("%s %s", m.Name, instances(f.count(m.Name))))
	}
	return strings.Join(parts, ", ")
}

// stackResults judges the metric rules of a stack's checks on each of its
// services: green's service against blue's same service, each over what
// the router saw of it (its public route and its own addresses, so calls
// from the other services count). A service whose green had fewer than
// min_requests in the interval (an internal worker nobody called, say) is
// left out when another service was judged; when none was, the evaluation
// is inconclusive as for an app of one service. It also returns green's
// and blue's numbers summed over the services, for the event.
func (e *Engine) stackResults(ctx context.Context, s *state) ([]RuleResult, FleetMetrics, *FleetMetrics, error) {
	c := s.green.Spec.Checks
	all, err := e.metricsOf(ctx, s, c.Interval.D())
	if err != nil {
		return nil, FleetMetrics{}, nil, err
	}
	gf := s.greenFleet()
	front := frontSpec(s)
	var judged, quiet []RuleResult
	var greens, blues []FleetMetrics
	for _, m := range s.green.Spec.Members() {
		green, _ := memberMetrics(all, s.d.App, gf, m, front)
		greens = append(greens, green)
		blue := s.blueMember(all, m, front)
		if blue != nil {
			blues = append(blues, *blue)
		}
		blue, used := s.compareWith(m.Name, blue)
		rs := EvaluateMetrics(c, green, blue)
		if used {
			markBaseline(rs)
		}
		for i := range rs {
			rs[i].Service = m.Name
		}
		if green.Requests >= uint64(c.MinRequests) {
			judged = append(judged, rs...)
		} else {
			quiet = append(quiet, rs...)
		}
	}
	if len(judged) == 0 {
		judged = quiet
	}
	var green FleetMetrics
	if len(greens) > 0 {
		green = sumMetrics(greens)
	}
	var blue *FleetMetrics
	if len(blues) > 0 {
		b := sumMetrics(blues)
		blue = &b
	}
	return judged, green, blue, nil
}

// blueMember is what the router saw of blue's copy of green's service m
// (nil without a blue, or when blue has no such service).
func (s *state) blueMember(all map[string]map[string]FleetMetrics, m spec.Member, front *spec.Spec) *FleetMetrics {
	bf, ok := s.blueFleet()
	if !ok {
		return nil
	}
	bn, ok := counterpart(m.Name, s.green.Spec, s.blue.Spec)
	if !ok {
		return nil
	}
	bm, _ := s.blue.Spec.Member(bn)
	b, ok := memberMetrics(all, s.d.App, bf, bm, front)
	if !ok {
		return nil
	}
	return &b
}

// compareWith is blueToCompare for one service of a stack: blue's same
// service while it has enough requests in the interval (its numbers then
// become the service's baseline), else that baseline; used says the
// baseline was used.
func (s *state) compareWith(service string, blue *FleetMetrics) (_ *FleetMetrics, used bool) {
	c := s.green.Spec.Checks
	need := uint64(max(c.MinRequests, c.JudgeMinSamples(), 1))
	switch base := s.det.BlueBaselines[service]; {
	case blue != nil && blue.Requests >= need:
		b := *blue
		b.Targets = nil
		if s.det.BlueBaselines == nil {
			s.det.BlueBaselines = map[string]*FleetMetrics{}
		}
		s.det.BlueBaselines[service] = &b
	case base != nil:
		return base, true
	}
	return blue, false
}

// noteStackBaselines is noteBaseline for a stack: each service's blue
// numbers over the last check interval, just before green first takes
// production traffic.
func (e *Engine) noteStackBaselines(ctx context.Context, s *state) error {
	if s.blue == nil || len(s.green.Spec.Checks.Rules) == 0 {
		return nil
	}
	all, err := e.metricsOf(ctx, s, s.green.Spec.Checks.Interval.D())
	if err != nil {
		return err
	}
	front := frontSpec(s)
	for _, m := range s.green.Spec.Members() {
		s.compareWith(m.Name, s.blueMember(all, m, front))
	}
	return nil
}
