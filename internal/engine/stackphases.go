package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"bluegreen/internal/spec"
)

// The steps of a deployment that only a stack has: its services started in
// dependency order, and drained in reverse (see phases.go for the rest).

// startStack starts green's services in dependency order, each healthy
// before the next starts, and says when every service runs (done; the last
// one's health is what Validating waits for, with the others'). Each pass
// does what is left, so a resumed deployment carries on where it stood.
func (e *Engine) startStack(ctx context.Context, s *state) (wait time.Duration, done bool, err error) {
	gf := s.greenFleet()
	ms := s.green.Spec.Members()
	for i, m := range ms {
		fs, err := e.observe(ctx, gf)
		if err != nil {
			return 0, false, err
		}
		if ex := fs.of(m.Name).exited; len(ex) > 0 {
			return 0, false, rollbackf("%s", e.exitedReason(ctx, ex[0]))
		}
		launched, err := e.ensureMember(ctx, gf, m)
		e.launchedEvents(ctx, s, launched)
		if err != nil {
			return 0, false, rollbackf("%v", err)
		}
		if _, ok := s.d.Deadlines[deadlineStartup]; len(launched) > 0 || !ok {
			// Each service has its own startup time, from its launch.
			s.d.Deadlines[deadlineStartup] = e.now().Add(m.Health.StartupTimeout.D())
			if err := e.save(ctx, s, change{}); err != nil {
				return 0, false, err
			}
		}
		if i == len(ms)-1 || slices.Contains(s.det.HealthyServices, m.Name) {
			continue
		}
		// The router health-checks green as soon as it is in the table.
		if err := e.route(ctx, s); err != nil {
			return 0, false, err
		}
		all, err := e.metricsOf(ctx, s, time.Second)
		if err != nil {
			return 0, false, err
		}
		targets := targetsOf(all, s.d.App, gf, m.Name, frontSpec(s))
		if n := countHealthy(targets, m.Health); n < gf.count(m.Name) {
			if !e.now().Before(s.d.Deadlines[deadlineStartup]) {
				return 0, false, rollbackf("green's service %s never became healthy: %d of %s passed %s within %s%s", m.Name,
					n, instances(gf.count(m.Name)), m.Health.Path, m.Health.StartupTimeout,
					e.unhealthyDetails(ctx, fs.of(m.Name).running, targets, healthNeed(m.Health)))
			}
			if err := e.reportHealthWait(ctx, s, targets); err != nil {
				return 0, false, err
			}
			return min(e.opts.Tick, validateLook), false, nil
		}
		s.det.HealthyServices = append(s.det.HealthyServices, m.Name)
		delete(s.d.Deadlines, deadlineStartup)
		next := ms[i+1].Name
		if err := e.save(ctx, s, change{kind: "health.passed", message: fmt.Sprintf("green's service %s is healthy; starting %s", m.Name, next),
			fields: map[string]any{"service": m.Name, "healthy": gf.count(m.Name)}}); err != nil {
			return 0, false, err
		}
	}
	return 0, true, nil
}

// drainOrder names the router apps that hold fleet f, in the order they
// drain: services in reverse dependency order, each public route before
// the service's own address.
func drainOrder(app string, f fleet, front *spec.Spec) []string {
	var out []string
	ms := f.rev.Spec.Members()
	for i := len(ms) - 1; i >= 0; i-- {
		m := ms[i]
		if m.Public {
			key, ok := counterpart(m.Name, f.rev.Spec, front)
			if !ok {
				key = m.Name
			}
			out = append(out, publicName(app, key))
		}
		if f.rev.Spec.IsStack() {
			out = append(out, internalName(app, m.Name, f.slot))
		}
	}
	return out
}
