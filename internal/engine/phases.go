package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"bluegreen/internal/platform"
	"bluegreen/internal/router"
	"bluegreen/internal/routerproc"
	"bluegreen/internal/spec"
	"bluegreen/internal/store"
)

// route pushes the app's routing state as the deployment's phase and
// details say it should be. It is computed from durable state alone, so a
// resumed deployment pushes exactly what was there before. For a stack,
// every service's routes go in the one push.
func (e *Engine) route(ctx context.Context, s *state) error {
	routes, err := e.routesNow(ctx, s)
	if err == nil {
		err = e.pushRoutes(ctx, s.d.App, routes)
	}
	var pe *PermanentError
	if s.d.Phase == PhaseRollingBack && s.blue == nil && errors.As(err, &pe) {
		// A first deployment whose own routes are refused has nothing to
		// go back to: the app leaves the router.
		e.log.Warn("removing the routes the router refused", "app", s.d.App, "err", err)
		return e.pushRoutes(ctx, s.d.App, nil)
	}
	return err
}

// routesNow is the app's routing state where the deployment stands.
func (e *Engine) routesNow(ctx context.Context, s *state) (Routes, error) {
	var fleets []fleetPlan
	gs, err := e.observe(ctx, s.greenFleet())
	if err != nil {
		return nil, err
	}
	rollingBack := s.d.Phase == PhaseRollingBack
	// A stack's green is routed (at weight 0) while it is provisioned: its
	// services reach each other through the router, and each must be
	// healthy before the next starts.
	if s.d.Phase != PhasePending && (s.d.Phase != PhaseProvisioning || s.green.Spec.IsStack()) {
		w := s.det.Weight
		if rollingBack {
			w = 0
		}
		fleets = append(fleets, planFleet(s.green, s.det.Slot, RoleGreen, w, gs, rollingBack))
	}
	if bf, ok := s.blueFleet(); ok {
		bs, err := e.observe(ctx, bf)
		if err != nil {
			return nil, err
		}
		w := 100 - s.det.Weight
		if rollingBack {
			w = 100
		}
		fleets = append(fleets, planFleet(bf.rev, bf.slot, RoleBlue, w, bs, s.det.BlueFenced && !rollingBack))
	}
	// The test listener is green's own while it serves green, and the
	// front spec's otherwise.
	p := routePlan{front: frontRevision(s), test: frontSpec(s), fleets: fleets}
	if testServesGreen(s.d.Phase) {
		p.testFleet, p.test = s.det.Slot, s.green.Spec
	}
	return e.routes(ctx, s.d.App, p)
}

// testServesGreen says whether the test listener serves green in a phase:
// from TestTraffic until green becomes live.
func testServesGreen(phase string) bool {
	switch phase {
	case PhaseTestTraffic, PhaseAwaitingApproval, PhaseShifting, PhaseBaking:
		return true
	}
	return false
}

// frontRevision is the revision whose production settings (listener,
// hosts, stickiness, preview header) are in force: blue's for as long as
// blue is live, green's from the moment green becomes live (the end of the
// bake) and for an app's first deployment. A rollback puts blue's back.
func frontRevision(s *state) *revision {
	if s.blue == nil {
		return s.green
	}
	switch s.d.Phase {
	case PhaseRetiring, PhaseSucceeded:
		return s.green
	}
	return s.blue
}

// frontSpec is frontRevision's spec.
func frontSpec(s *state) *spec.Spec { return frontRevision(s).Spec }

func (e *Engine) pending(ctx context.Context, s *state) error {
	a, err := e.st.GetApp(ctx, s.d.App)
	if err != nil {
		return err
	}
	if s.det.Slot == "" {
		s.det.Slot = SlotGreen
		if s.blue != nil {
			s.det.Slot = otherSlot(a.LiveSlot)
		}
	}
	if s.blue != nil {
		s.det.BlueSlot = a.LiveSlot
		s.det.BlueInstances = a.LiveInstances
		if s.det.BlueInstances <= 0 {
			s.det.BlueInstances = s.blue.Spec.Workload().Instances
		}
	}
	// Green gets blue's instance count, unless the new spec asks for a
	// different count than blue's spec did. A stack's services get their
	// spec's.
	s.det.Instances = s.green.Spec.Workload().Instances
	if s.blue != nil && s.blue.Spec.Workload().Instances == s.green.Spec.Workload().Instances {
		s.det.Instances = s.det.BlueInstances
	}
	s.det.Services = serviceCounts(s.green.Spec)
	if s.green.Spec.IsStack() {
		s.det.Instances = s.greenFleet().total()
	}
	if s.blue != nil {
		s.det.BlueServices = serviceCounts(s.blue.Spec)
		if s.blue.Spec.IsStack() {
			bf, _ := s.blueFleet()
			s.det.BlueInstances = bf.total()
		}
	}
	if err := e.checkRoutes(ctx, s); err != nil {
		return err
	}
	fields := map[string]any{"slot": s.det.Slot, "instances": s.greenFleet().total()}
	msg := fmt.Sprintf("provisioning %s of revision %d as green", instances(s.det.Instances), s.green.Generation)
	if s.green.Spec.IsStack() {
		fields["services"] = s.det.Services
		msg = fmt.Sprintf("provisioning revision %d as green: %s", s.green.Generation, stackSummary(s.greenFleet()))
	}
	return e.moveOn(ctx, s, PhaseProvisioning, msg, fields, nil)
}

// routeLive routes green alone, as the live fleet (blue, by role).
func (e *Engine) routeLive(ctx context.Context, s *state) error {
	return e.routeFleetLive(ctx, s.greenFleet())
}

// checkRoutes asks the data plane, before anything starts, whether it will
// take the app's routes while green is a candidate and once green is live,
// so that a host or listener that cannot be had ends the deployment before
// an instance runs.
func (e *Engine) checkRoutes(ctx context.Context, s *state) error {
	green := planFleet(s.green, s.det.Slot, RoleGreen, 0, fleetState{}, false)
	if bf, ok := s.blueFleet(); ok {
		blue := planFleet(bf.rev, bf.slot, RoleBlue, 0, fleetState{}, false)
		routes, err := e.routes(ctx, s.d.App, routePlan{front: s.blue, test: s.green.Spec, fleets: []fleetPlan{green, blue}, testFleet: s.det.Slot})
		if err != nil {
			return err
		}
		if err := e.opts.Traffic.Check(ctx, s.d.App, routes); err != nil {
			return err
		}
	}
	green.role = RoleBlue
	routes, err := e.routes(ctx, s.d.App, routePlan{front: s.green, fleets: []fleetPlan{green}})
	if err != nil {
		return err
	}
	return e.opts.Traffic.Check(ctx, s.d.App, routes)
}

func (e *Engine) provisioning(ctx context.Context, s *state) (time.Duration, error) {
	// Leftovers in green's slot (a green kept after an earlier rollback)
	// make way first.
	if _, err := e.stopWhere(ctx, s.d.App, stopTimeout(s.green.Spec), func(in platform.Instance) bool {
		return in.Fleet == s.det.Slot && in.Revision != s.green.Generation
	}); err != nil {
		return 0, err
	}
	if err := e.runHooks(ctx, s, "before_install", true); err != nil {
		return 0, err
	}
	if _, err := e.unpack(s.green); err != nil {
		return 0, rollbackf("%v", err)
	}
	if err := e.runHooks(ctx, s, "after_install", true); err != nil {
		return 0, err
	}
	if s.green.Spec.IsStack() {
		if wait, done, err := e.startStack(ctx, s); err != nil || !done {
			return wait, err
		}
	} else {
		launched, err := e.ensure(ctx, s.greenFleet())
		e.launchedEvents(ctx, s, launched)
		if err != nil {
			return 0, rollbackf("%v", err)
		}
	}
	if err := e.runHooks(ctx, s, "application_start", true); err != nil {
		return 0, err
	}
	startup := s.green.Spec.Health.StartupTimeout.D()
	if s.green.Spec.IsStack() {
		// The last service started gets its own startup time.
		ms := s.green.Spec.Members()
		startup = ms[len(ms)-1].Health.StartupTimeout.D()
		if dl, ok := s.d.Deadlines[deadlineStartup]; ok {
			startup = max(dl.Sub(e.now()), 0)
		}
	}
	return 0, e.moveOn(ctx, s, PhaseValidating, "waiting for every green instance to pass its health check", nil,
		map[string]time.Time{deadlineStartup: e.now().Add(startup)})
}

// launchedEvents records the instances a step launched.
func (e *Engine) launchedEvents(ctx context.Context, s *state, launched []platform.Instance) {
	for _, in := range launched {
		fields := map[string]any{"instance": in.ID, "address": in.Address, "pid": in.PID, "fleet": s.det.Slot}
		if in.Service != "" {
			fields["service"] = in.Service
		}
		e.event(ctx, s.d.App, s.d.ID, "instance.launched", fmt.Sprintf("instance %s started at %s (pid %d)", in.ID, in.Address, in.PID), fields)
	}
}

// healthNeed is how many passed checks make a new target healthy: until
// the router has checked it, a new target is healthy on trust, so only
// verdicts count, as many passes as the health section's threshold.
func healthNeed(h spec.Health) uint64 { return uint64(max(1, h.HealthyThreshold)) }

// countHealthy counts the targets that passed their checks.
func countHealthy(targets []router.TargetSnapshot, h spec.Health) int {
	n := 0
	for _, t := range targets {
		if t.Healthy && !t.Suspect && t.Checks >= healthNeed(h) {
			n++
		}
	}
	return n
}

// validateLook is how long a deployment waits before it looks at green's
// health again, since after it began validating. The router checks a new
// target as soon as it is routed, and again 10 ms after a pass (backing
// off from 20 ms after a failure): looking every few milliseconds at
// first moves a fast app on within milliseconds of its second pass, and
// the looks thin out to one every 50 ms for an app that takes its time.
func validateLook(since time.Duration) time.Duration {
	return min(max(since/4, 5*time.Millisecond), 50*time.Millisecond)
}

// greenExited is a reason to roll back when an instance of green has died.
func (e *Engine) greenExited(ctx context.Context, s *state) (fleetState, error) {
	gf := s.greenFleet()
	gs, err := e.observe(ctx, gf)
	if err != nil {
		return gs, err
	}
	if len(gs.exited) > 0 {
		return gs, rollbackf("%s", e.exitedReason(ctx, gs.exited[0]))
	}
	if !s.green.Spec.IsStack() {
		if len(gs.running) < s.det.Instances {
			return gs, rollbackf("green has %d of %s running", len(gs.running), instances(s.det.Instances))
		}
		return gs, nil
	}
	for _, m := range s.green.Spec.Members() {
		if n := len(gs.of(m.Name).running); n < gf.count(m.Name) {
			return gs, rollbackf("green's service %s has %d of %s running", m.Name, n, instances(gf.count(m.Name)))
		}
	}
	return gs, nil
}

func (e *Engine) validating(ctx context.Context, s *state) (time.Duration, error) {
	gs, err := e.greenExited(ctx, s)
	if err != nil {
		return 0, err
	}
	if err := e.route(ctx, s); err != nil {
		return 0, err
	}
	all, err := e.metricsOf(ctx, s, time.Second)
	if err != nil {
		return 0, err
	}
	gf := s.greenFleet()
	healthy, want := 0, 0
	var targets []router.TargetSnapshot
	var why strings.Builder
	for _, m := range s.green.Spec.Members() {
		ts := targetsOf(all, s.d.App, gf, m.Name, frontSpec(s))
		n := countHealthy(ts, m.Health)
		healthy, want, targets = healthy+n, want+gf.count(m.Name), append(targets, ts...)
		if n >= gf.count(m.Name) {
			continue
		}
		if m.Name == "" {
			fmt.Fprintf(&why, "%d of %s passed %s within %s%s", n, instances(gf.count(m.Name)), m.Health.Path, m.Health.StartupTimeout,
				e.unhealthyDetails(ctx, gs.running, ts, healthNeed(m.Health)))
		} else {
			fmt.Fprintf(&why, "\n  service %s: %d of %s passed %s within %s%s", m.Name, n, instances(gf.count(m.Name)), m.Health.Path, m.Health.StartupTimeout,
				e.unhealthyDetails(ctx, gs.of(m.Name).running, ts, healthNeed(m.Health)))
		}
	}
	if healthy < want {
		if !e.now().Before(s.d.Deadlines[deadlineStartup]) {
			return 0, rollbackf("green never became healthy: %s", strings.TrimPrefix(why.String(), "\n  "))
		}
		if err := e.reportHealthWait(ctx, s, targets); err != nil {
			return 0, err
		}
		// The router probes a starting instance within milliseconds of
		// its answering: look again soon, so green moves on as soon as it
		// is healthy.
		began := s.d.Deadlines[deadlineStartup].Add(-s.green.Spec.Health.StartupTimeout.D())
		return min(e.opts.Tick, validateLook(e.now().Sub(began))), nil
	}
	e.event(ctx, s.d.App, s.d.ID, "health.passed", healthyMessage(healthy), map[string]any{"healthy": healthy})
	if err := e.runHooks(ctx, s, "validate_service", true); err != nil {
		return 0, err
	}
	return 0, e.moveOn(ctx, s, PhaseTestTraffic, "the test listener serves green", map[string]any{"test_url": listenerURL(s.green.Spec.Router.Test)}, nil)
}

func (e *Engine) testTraffic(ctx context.Context, s *state) error {
	if err := e.route(ctx, s); err != nil {
		return err
	}
	if err := e.runHooks(ctx, s, "after_allow_test_traffic", true); err != nil {
		return err
	}
	st := s.green.Spec.Strategy
	if st.Approval == "manual" && !s.det.Fast {
		return e.moveOn(ctx, s, PhaseAwaitingApproval, fmt.Sprintf("waiting for promote (times out in %s, then %s)", st.ApprovalTimeout, st.OnApprovalTimeout), nil,
			map[string]time.Time{deadlineApproval: e.now().Add(st.ApprovalTimeout.D())})
	}
	return e.startShifting(ctx, s)
}

func (e *Engine) awaitingApproval(ctx context.Context, s *state) (time.Duration, error) {
	if err := e.route(ctx, s); err != nil {
		return 0, err
	}
	if _, err := e.greenExited(ctx, s); err != nil {
		return 0, err
	}
	if s.det.Approved {
		return 0, e.startShifting(ctx, s)
	}
	exp := s.d.Deadlines[deadlineApproval]
	if now := e.now(); !now.Before(exp) {
		if s.green.Spec.Strategy.OnApprovalTimeout == "continue" {
			e.event(ctx, s.d.App, s.d.ID, "approval.timeout", "nobody approved in time; going on as the spec says", nil)
			return 0, e.startShifting(ctx, s)
		}
		return 0, rollbackf("approval timed out after %s", s.green.Spec.Strategy.ApprovalTimeout)
	}
	return min(exp.Sub(e.now()), e.opts.Tick), nil
}

func (e *Engine) startShifting(ctx context.Context, s *state) error {
	if err := e.runHooks(ctx, s, "before_allow_traffic", true); err != nil {
		return err
	}
	if err := e.noteBaseline(ctx, s); err != nil {
		return err
	}
	s.det.Progress = Progress{Since: e.now()}
	dl := map[string]time.Time{}
	if len(s.green.Spec.Checks.Rules) > 0 {
		dl[deadlineCheck] = e.now().Add(s.green.Spec.Checks.Interval.D())
	}
	return e.moveOn(ctx, s, PhaseShifting, "shifting production traffic to green", nil, dl)
}

// plan is the strategy's answer for the deployment now. An app's first
// deployment and the fast path of a rollback go to 100 % at once.
func (e *Engine) plan(s *state) Plan {
	full := s.det.Full || s.blue == nil || s.det.Fast
	return NextPlan(s.green.Spec.Strategy.Steps, s.det.Progress, full, len(s.green.Spec.Checks.Rules) > 0, e.now())
}

// stalledPlan is plan, told that inconclusive checks made the deployment
// wait for a person.
func (e *Engine) stalledPlan(s *state) Plan {
	p := e.plan(s)
	if s.det.Stalled && p.Waiting == WaitChecks {
		p.Waiting = WaitPromote
	}
	return p
}

// watch runs while green takes production traffic: a dead green instance
// or an unhealthy green target rolls back; a dead blue instance is
// replaced, blue being the way back; checks are evaluated when due.
func (e *Engine) watch(ctx context.Context, s *state) error {
	if _, err := e.greenExited(ctx, s); err != nil {
		return err
	}
	if exp, ok := s.d.Deadlines[deadlineStalled]; ok && s.det.Stalled && !e.now().Before(exp) {
		return rollbackf("nobody promoted within %s after %d inconclusive check evaluations in a row", s.green.Spec.Strategy.ApprovalTimeout, s.det.Inconclusive)
	}
	if bf, ok := s.blueFleet(); ok && !s.det.BlueFenced {
		launched, err := e.ensure(ctx, bf)
		for _, in := range launched {
			e.event(ctx, s.d.App, s.d.ID, "instance.replaced", fmt.Sprintf("blue instance %s was not running; started it again at %s", in.ID, in.Address),
				map[string]any{"instance": in.ID, "address": in.Address})
		}
		if err != nil {
			return err
		}
	}
	if err := e.route(ctx, s); err != nil {
		return err
	}
	all, err := e.metricsOf(ctx, s, time.Second)
	if err != nil {
		return err
	}
	gf := s.greenFleet()
	for _, m := range s.green.Spec.Members() {
		for _, t := range targetsOf(all, s.d.App, gf, m.Name, frontSpec(s)) {
			if !t.Healthy && t.Checks > 0 {
				// A target that stops answering may be an instance that
				// exited: the platform may learn it a moment after the
				// router, and its exit code and last words say more.
				if err := e.exitedSoon(ctx, s); err != nil {
					return err
				}
				why := ""
				switch {
				case t.LastCheck != "" && t.LastCheckPassed:
					// Turned unhealthy, then passed again, not yet
					// enough times in a row to count as healthy.
					why = " (the last one passed, not yet enough times in a row: " + t.LastCheck + ")"
				case t.LastCheck != "":
					why = ": " + t.LastCheck
				}
				if m.Name != "" {
					return rollbackf("green target %s of service %s failed its health check%s", t.Address, m.Name, why)
				}
				return rollbackf("green target %s failed its health check%s", t.Address, why)
			}
		}
	}
	return e.checkIfDue(ctx, s)
}

// exitedSoon gives the platform up to a second to report a green instance
// that exited (five on Kubernetes, where the kubelet reports a pod's end
// on its own schedule), and returns greenExited's verdict if one did.
func (e *Engine) exitedSoon(ctx context.Context, s *state) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	looks := 10
	if s.green.Spec.Platform == spec.PlatformKubernetes {
		looks = 50
	}
	for range looks {
		// Each look asks the platform afresh, not the pass's memo.
		forgetListed(ctx, s.d.App)
		if _, err := e.greenExited(ctx, s); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

func (e *Engine) shifting(ctx context.Context, s *state) (time.Duration, error) {
	if err := e.watch(ctx, s); err != nil {
		return 0, err
	}
	p := e.plan(s)
	if p.Weight != s.det.Weight || p.Step != s.det.Progress.Step {
		from := s.det.Weight
		s.det.Progress, s.det.Weight = p.Progress, p.Weight
		if p.Weight != from {
			// Persist first, then move traffic: a crash between the two is
			// repaired by the resumed runner's route().
			dl := s.d.Deadlines
			dl[deadlineProgress] = e.now().Add(s.green.Spec.Strategy.ProgressDeadline.D())
			if _, ok := dl[deadlineCheck]; ok {
				// The next evaluation looks at the new weight only.
				dl[deadlineCheck] = e.now().Add(s.green.Spec.Checks.Interval.D())
			}
			if err := e.save(ctx, s, change{kind: "traffic", message: fmt.Sprintf("green %d%% → %d%% (step %d of %d)", from, p.Weight, min(p.Step+1, len(s.green.Spec.Strategy.Steps)), len(s.green.Spec.Strategy.Steps)),
				fields: map[string]any{"from": from, "weight": p.Weight, "step": p.Step}}); err != nil {
				return 0, err
			}
			if err := e.route(ctx, s); err != nil {
				return 0, err
			}
		} else if err := e.save(ctx, s, change{}); err != nil {
			return 0, err
		}
	}
	if p.Done {
		dl := map[string]time.Time{deadlineBake: e.now().Add(s.green.Spec.Bake.D())}
		if s.det.Fast || s.blue == nil {
			// Nothing to compare with or go back to: no bake.
			dl[deadlineBake] = e.now()
		}
		if c, ok := s.d.Deadlines[deadlineCheck]; ok {
			dl[deadlineCheck] = c
		}
		msg := fmt.Sprintf("green has 100%%; baking for %s with blue warm", s.green.Spec.Bake)
		switch {
		case s.det.Fast:
			msg = "green has 100%; no bake on the fast path of a rollback"
		case s.blue == nil:
			msg = "green has 100%; no bake on an app's first deployment"
		case s.green.Spec.Bake.D() == 0:
			msg = "green has 100%; no bake"
		}
		return 0, e.moveOn(ctx, s, PhaseBaking, msg, nil, dl)
	}
	return e.nextLook(s, p.Until), nil
}

// bakeGated says whether the end of the bake waits for a passing check
// evaluation: when rules watch a bake that lasts, on a deployment that
// has a blue to compare with and to go back to.
func bakeGated(s *state) bool {
	return len(s.green.Spec.Checks.Rules) > 0 && s.green.Spec.Bake.D() > 0 && holdsOnSilence(s)
}

// nextLook is how long to wait: until the sooner of until, the next check
// and a tick.
func (e *Engine) nextLook(s *state, until time.Time) time.Duration {
	wait := e.opts.Tick
	now := e.now()
	for _, t := range []time.Time{until, s.d.Deadlines[deadlineCheck]} {
		if !t.IsZero() && t.Sub(now) < wait {
			wait = max(t.Sub(now), 0)
		}
	}
	return wait
}

func (e *Engine) baking(ctx context.Context, s *state) (time.Duration, error) {
	if err := e.watch(ctx, s); err != nil {
		return 0, err
	}
	if err := e.runHooks(ctx, s, "after_allow_traffic", true); err != nil {
		return 0, err
	}
	end := s.d.Deadlines[deadlineBake]
	if !s.det.SkipBake {
		if e.now().Before(end) {
			return e.nextLook(s, end), nil
		}
		if bakeGated(s) && !s.det.Progress.Checked {
			// Silence is not a pass: green becomes live after an
			// evaluation at 100 % passed.
			return e.nextLook(s, time.Time{}), nil
		}
	}
	// Green is live from here: the app's live revision changes in the
	// same transaction as the phase.
	setLive := func(ctx context.Context, tx *store.Tx) error {
		a, err := tx.GetApp(ctx, s.d.App)
		if err != nil {
			return err
		}
		_, err = tx.SetLive(ctx, a, s.green.Generation, s.det.Slot, s.det.Instances)
		return err
	}
	if s.blue == nil {
		s.det.Progress.Step = len(s.green.Spec.Strategy.Steps)
		if err := e.save(ctx, s, change{phase: PhaseSucceeded, outcome: store.OutcomeSucceeded, reason: "green is live",
			kind: "phase", message: fmt.Sprintf("revision %d is live", s.green.Generation), app: setLive}); err != nil {
			return 0, err
		}
		// Live now, as any live fleet is routed: named blue, and the test
		// listener serves no one until the next deployment. (Were this
		// push lost, the upkeep of idle apps makes it within seconds.)
		if err := e.routeLive(ctx, s); err != nil {
			e.log.Warn("routing the live fleet", "app", s.d.App, "err", err)
		}
		return 0, nil
	}
	s.d.Deadlines = map[string]time.Time{deadlineKeepBlue: e.now().Add(s.green.Spec.Retire.KeepBlue.D())}
	return 0, e.save(ctx, s, change{phase: PhaseRetiring, kind: "phase", app: setLive,
		message: fmt.Sprintf("revision %d is live; blue stays warm for %s, then drains for up to %s", s.green.Generation, s.green.Spec.Retire.KeepBlue, s.green.Spec.Retire.DrainTimeout)})
}

func (e *Engine) retiring(ctx context.Context, s *state) (time.Duration, error) {
	bf, _ := s.blueFleet()
	if !s.det.BlueFenced {
		// While blue is warm, green is watched as during the shift: if it
		// dies or fails its health check, traffic goes back to blue.
		if err := e.watch(ctx, s); err != nil {
			return 0, err
		}
		exp := s.d.Deadlines[deadlineKeepBlue]
		if !s.det.SkipKeepBlue && e.now().Before(exp) {
			return min(exp.Sub(e.now()), e.opts.Tick*4), nil
		}
		if err := e.runHooks(ctx, s, "before_block_traffic", true); err != nil {
			return 0, err
		}
		s.det.BlueFenced = true
		if err := e.save(ctx, s, change{kind: "traffic", message: "blue is fenced: it takes no new requests", fields: map[string]any{"fleet": bf.slot}}); err != nil {
			return 0, err
		}
	}
	if err := e.route(ctx, s); err != nil {
		return 0, err
	}
	timeout := s.green.Spec.Retire.DrainTimeout.D()
	rep, waited, err := e.drain(ctx, s, bf, timeout)
	if err != nil {
		return 0, err
	}
	msg := fmt.Sprintf("blue drained in %s", waited.Round(time.Millisecond))
	if !rep.Complete {
		msg = fmt.Sprintf("blue's drain deadline (%s) closed %d requests (%d streams) and %d upgraded connections", timeout, rep.OpenRequests, rep.OpenStreams, rep.OpenConnections)
		if rep.Spread > 0 {
			msg += fmt.Sprintf(", one after another over %s", rep.Spread.D())
		}
	}
	e.event(ctx, s.d.App, s.d.ID, "drain", msg, map[string]any{
		"fleet": bf.slot, "role": RoleBlue, "complete": rep.Complete, "waited_seconds": waited.Seconds(),
		"open_requests": rep.OpenRequests, "open_streams": rep.OpenStreams, "open_connections": rep.OpenConnections,
	})
	if err := e.runHooks(ctx, s, "after_block_traffic", true); err != nil {
		return 0, err
	}
	if err := e.runStopHooks(ctx, s, bf, RoleBlue); err != nil {
		return 0, err
	}
	ids, err := e.stopFleet(ctx, bf)
	if err != nil {
		return 0, err
	}
	// Blue leaves the routing table; green alone serves.
	if err := e.routeLive(ctx, s); err != nil {
		return 0, err
	}
	s.d.Deadlines = map[string]time.Time{}
	return 0, e.save(ctx, s, change{phase: PhaseSucceeded, outcome: store.OutcomeSucceeded, reason: "blue retired",
		kind: "phase", message: fmt.Sprintf("blue retired (%s stopped); deployment succeeded", instances(len(ids))), fields: map[string]any{"stopped": ids}})
}

// drain fences a fleet and waits for its work to end until the drain's
// deadline, which is stored when the drain first starts: a server that
// restarts mid-drain resumes the same drain and closes what is left at the
// original deadline. waited counts from the drain's first start. A
// stack's services drain in reverse dependency order (a front end before
// the back end it calls), each public route before the service's own
// address, within the one deadline.
func (e *Engine) drain(ctx context.Context, s *state, f fleet, timeout time.Duration) (router.DrainReport, time.Duration, error) {
	now := e.now()
	end, ok := s.d.Deadlines[deadlineDrain]
	if !ok {
		end = now.Add(timeout)
		if s.d.Deadlines == nil {
			s.d.Deadlines = map[string]time.Time{}
		}
		s.d.Deadlines[deadlineDrain] = end
		if err := e.save(ctx, s, change{}); err != nil {
			return router.DrainReport{}, 0, err
		}
	}
	left := max(end.Sub(now), 0)
	total := router.DrainReport{App: s.d.App, Fleet: f.slot, Complete: true}
	var waited time.Duration
	for _, name := range drainOrder(s.d.App, f, frontSpec(s)) {
		rep, err := e.drainOne(ctx, s, f, name, max(end.Sub(e.now()), 0))
		if err != nil {
			return total, timeout - left + waited, err
		}
		waited += time.Duration(rep.Waited)
		total.Complete = total.Complete && rep.Complete
		total.OpenRequests += rep.OpenRequests
		total.OpenStreams += rep.OpenStreams
		total.OpenConnections += rep.OpenConnections
		total.Spread = max(total.Spread, rep.Spread)
	}
	if f.rev.Spec.ServiceTraffic() || s.green.Spec.ServiceTraffic() {
		// No router saw the fleet's requests: it gets the whole drain.
		if err := e.waitDrainEnd(ctx, end); err != nil {
			return total, timeout - left + waited, err
		}
		waited = max(waited, end.Sub(now))
	}
	total.Waited = router.Duration(waited)
	return total, timeout - left + waited, nil
}

// drainOne drains one router app of the fleet. A drain whose closes are
// spread lasts that much past its timeout: the call is given the time.
func (e *Engine) drainOne(ctx context.Context, s *state, f fleet, name string, timeout time.Duration) (router.DrainReport, error) {
	if spread := max(s.green.Spec.Retire.DrainSpread.D(), f.rev.Spec.Retire.DrainSpread.D()); spread > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout+spread+routerproc.DefaultCallTimeout)
		defer cancel()
	}
	return e.opts.Traffic.Drain(ctx, name, f.slot, timeout)
}

// beginRollback starts rolling back: the phase changes first (so a crash
// from here on resumes the rollback), then traffic goes back to blue.
func (e *Engine) beginRollback(ctx context.Context, s *state, reason string) error {
	if s.d.Phase == PhaseRollingBack || !s.d.Active() {
		return nil
	}
	s.det.RollbackFrom = s.d.Phase
	s.det.Abort = ""
	s.d.Deadlines = map[string]time.Time{deadlineProgress: e.now().Add(s.green.Spec.Strategy.ProgressDeadline.D())}
	if err := e.save(ctx, s, change{phase: PhaseRollingBack, reason: reason, kind: "phase",
		message: "rolling back: " + reason, fields: map[string]any{"from": s.det.RollbackFrom}}); err != nil {
		return err
	}
	return e.route(ctx, s)
}

// rollingBack puts blue back in charge: all production traffic, its
// instances complete, the live revision (if it had already moved); then
// on_rollback hooks, then green drained and stopped.
func (e *Engine) rollingBack(ctx context.Context, s *state) (time.Duration, error) {
	if err := e.route(ctx, s); err != nil {
		return e.rollbackTrouble(ctx, s, err)
	}
	bf, hasBlue := s.blueFleet()
	if hasBlue {
		if _, err := e.ensure(ctx, bf); err != nil {
			return e.rollbackTrouble(ctx, s, err)
		}
		if err := e.route(ctx, s); err != nil {
			return e.rollbackTrouble(ctx, s, err)
		}
	}
	if err := e.restoreLive(ctx, s); err != nil {
		return 0, err
	}
	if err := e.runHooks(ctx, s, "on_rollback", false); err != nil {
		return 0, err
	}
	gf := s.greenFleet()
	var stopped []string
	if !s.green.Spec.Retire.KeepGreenOnRollback {
		if _, _, err := e.drain(ctx, s, gf, s.green.Spec.Retire.DrainTimeout.D()); err != nil {
			e.log.Warn("draining green", "app", s.d.App, "err", err)
		}
		if err := e.runStopHooks(ctx, s, gf, RoleGreen); err != nil {
			return 0, err
		}
		var err error
		if stopped, err = e.stopFleet(ctx, gf); err != nil {
			return e.rollbackTrouble(ctx, s, err)
		}
	}
	var routes Routes
	if hasBlue {
		bs, err := e.observe(ctx, bf)
		if err != nil {
			return 0, err
		}
		if routes, err = e.routes(ctx, s.d.App, routePlan{front: bf.rev, fleets: []fleetPlan{planFleet(bf.rev, bf.slot, RoleBlue, 100, bs, false)}}); err != nil {
			return e.rollbackTrouble(ctx, s, err)
		}
	}
	if err := e.pushRoutes(ctx, s.d.App, routes); err != nil {
		return e.rollbackTrouble(ctx, s, err)
	}
	// The reason is the deployment's, said when the rollback began.
	msg := "rolled back: green is stopped; nothing was live before it"
	if hasBlue {
		msg = fmt.Sprintf("rolled back to revision %d", bf.rev.Generation)
	}
	s.d.Deadlines = map[string]time.Time{}
	return 0, e.save(ctx, s, change{phase: PhaseRolledBack, outcome: store.OutcomeRolledBack, kind: "phase", message: msg,
		fields: map[string]any{"stopped": stopped, "kept_green": s.green.Spec.Retire.KeepGreenOnRollback}})
}

// endRollbackNow ends a rollback that a person aborted: what the rollback
// still had to do is done once, without retries and without waiting for a
// drain or the on_rollback hooks, and the deployment ends: RolledBack when
// blue took every request back, Failed otherwise, with what went wrong.
func (e *Engine) endRollbackNow(ctx context.Context, s *state) error {
	var problems []string
	bf, hasBlue := s.blueFleet()
	var routes Routes
	if hasBlue {
		bs, err := e.observe(ctx, bf)
		if err != nil {
			problems = append(problems, err.Error())
		}
		if routes, err = e.routes(ctx, s.d.App, routePlan{front: bf.rev, fleets: []fleetPlan{planFleet(bf.rev, bf.slot, RoleBlue, 100, bs, false)}}); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) == 0 {
		// Without a table for blue, the router keeps what it has rather
		// than lose the app.
		if err := e.pushRoutes(ctx, s.d.App, routes); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if err := e.restoreLive(ctx, s); err != nil {
		problems = append(problems, err.Error())
	}
	if !s.green.Spec.Retire.KeepGreenOnRollback {
		if _, err := e.stopFleet(ctx, s.greenFleet()); err != nil {
			problems = append(problems, err.Error())
		}
	}
	s.d.Deadlines = map[string]time.Time{}
	fields := map[string]any{"abort": s.det.EndNow}
	if len(problems) == 0 {
		return e.save(ctx, s, change{phase: PhaseRolledBack, outcome: store.OutcomeRolledBack, kind: "phase", fields: fields,
			message: "rolled back: the abort ended the rollback's remaining steps (drain, on_rollback and application_stop hooks skipped)"})
	}
	return e.save(ctx, s, change{phase: PhaseFailed, outcome: store.OutcomeFailed, kind: "phase", fields: fields,
		reason:  fmt.Sprintf("%s; the rollback was ended by abort before it completed: %s", s.d.Reason, strings.Join(problems, "; ")),
		message: "rollback ended by abort: " + strings.Join(problems, "; ")})
}

// restoreLive makes blue the live revision again if green had become it.
func (e *Engine) restoreLive(ctx context.Context, s *state) error {
	a, err := e.st.GetApp(ctx, s.d.App)
	if err != nil {
		return err
	}
	if a.LiveGeneration != s.green.Generation || a.LiveSlot != s.det.Slot {
		return nil
	}
	gen, slot, n := int64(0), "", 0
	if bf, ok := s.blueFleet(); ok {
		gen, slot, n = bf.rev.Generation, bf.slot, bf.instances
	}
	return e.st.Update(ctx, func(tx *store.Tx) error { _, err := tx.SetLive(ctx, a, gen, slot, n); return err })
}

// rollbackTrouble retries a failing rollback until its deadline, then
// marks the deployment Failed: only a rollback that cannot complete fails.
func (e *Engine) rollbackTrouble(ctx context.Context, s *state, err error) (time.Duration, error) {
	if exp, ok := s.d.Deadlines[deadlineProgress]; ok && !e.now().Before(exp) {
		return 0, e.save(ctx, s, change{phase: PhaseFailed, outcome: store.OutcomeFailed,
			reason: fmt.Sprintf("%s; the rollback could not complete: %v", s.d.Reason, err),
			kind:   "phase", message: fmt.Sprintf("rollback failed: %v", err)})
	}
	return 0, err
}

// instances says "1 instance" or "N instances".
func instances(n int) string {
	if n == 1 {
		return "1 instance"
	}
	return fmt.Sprintf("%d instances", n)
}

func healthyMessage(n int) string {
	if n == 1 {
		return "the green instance is healthy"
	}
	return fmt.Sprintf("all %d green instances are healthy", n)
}
