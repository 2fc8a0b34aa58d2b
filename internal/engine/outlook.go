package engine

import (
	"context"
	"fmt"
	"time"
)

// Fleets reads the app's fleets from the data plane over the last window:
// weights, health, targets, requests, errors and latency, as the checks see
// them. An app the data plane does not serve has no fleets.
// A stack's fleets are its services' numbers added up (see Services for
// each service's).
func (e *Engine) Fleets(ctx context.Context, app string, window time.Duration) (map[string]FleetMetrics, error) {
	v, err := e.stackView(ctx, app)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return e.opts.Traffic.Metrics(ctx, app, window)
	}
	all, err := e.opts.Traffic.AppMetrics(ctx, app, window)
	if err != nil {
		return nil, err
	}
	out := map[string]FleetMetrics{}
	for _, f := range v.fleets {
		if m, ok := stackFleetMetrics(all, app, f, v.front); ok {
			out[f.slot] = m
		}
	}
	return out, nil
}

// Outlook is where an active deployment stands in its strategy and what
// happens next, for people watching it.
type Outlook struct {
	// Step is the strategy step being carried out (0-based), of Steps.
	Step  int
	Steps int
	// Weight is green's share of production traffic as last set.
	Weight int
	// Waiting says why the deployment stays where it is while Shifting.
	Waiting Waiting
	// Next says what happens next ("green goes to 50%", "blue retires"),
	// at At (zero when it waits for a person or a condition).
	Next string
	At   time.Time
	// Checks are the rules' verdicts in the latest check evaluation.
	Checks []RuleResult
}

// Outlook says where the deployment stands and what it does next.
func (e *Engine) Outlook(ctx context.Context, id string) (Outlook, error) {
	s, err := e.loadState(ctx, id)
	if err != nil {
		return Outlook{}, err
	}
	return outlook(s, e.now()), nil
}

// outlook is Outlook as a function of the deployment's state and the time.
func outlook(s *state, now time.Time) Outlook {
	steps := s.green.Spec.Strategy.Steps
	o := Outlook{Step: s.det.Progress.Step, Steps: len(steps), Weight: s.det.Weight, Checks: s.det.LastResults}
	dl := s.d.Deadlines
	switch s.d.Phase {
	case PhasePending, PhaseProvisioning:
		o.Next = "green's instances start"
	case PhaseValidating:
		o.Next, o.At = "green must be healthy", dl[deadlineStartup]
	case PhaseTestTraffic:
		o.Next = "the test listener's hooks pass, then traffic shifts"
	case PhaseAwaitingApproval:
		o.Next, o.At = fmt.Sprintf("waits for promote; on timeout: %s", s.green.Spec.Strategy.OnApprovalTimeout), dl[deadlineApproval]
	case PhaseShifting:
		full := s.det.Full || s.blue == nil || s.det.Fast
		p := NextPlan(steps, s.det.Progress, full, len(s.green.Spec.Checks.Rules) > 0, now)
		o.Waiting = p.Waiting
		next := nextWeight(steps, p.Step)
		switch {
		case s.det.Stalled && p.Waiting == WaitChecks:
			o.Waiting = WaitPromote
			o.Next, o.At = fmt.Sprintf("checks were inconclusive %d times in a row: waits for promote, then green goes to %d%%; rolls back otherwise", s.det.Inconclusive, next), dl[deadlineStalled]
		case p.Waiting == WaitChecks && s.det.Inconclusive > 0:
			o.Next, o.At = fmt.Sprintf("green goes to %d%% after a check passes (the last %d were inconclusive)", next, s.det.Inconclusive), dl[deadlineCheck]
		case p.Waiting == WaitPromote:
			o.Next = fmt.Sprintf("waits for promote, then green goes to %d%%", next)
		case p.Waiting == WaitPause:
			o.Next, o.At = fmt.Sprintf("green goes to %d%%", next), p.Until
		case p.Waiting == WaitChecks:
			o.Next, o.At = fmt.Sprintf("green goes to %d%% after a check passes", next), dl[deadlineCheck]
		default:
			o.Next = "green goes to 100%"
		}
	case PhaseBaking:
		o.Next, o.At = "green becomes live", dl[deadlineBake]
		switch {
		case s.det.Stalled:
			o.Next, o.At = fmt.Sprintf("checks were inconclusive %d times in a row: waits for promote, then green becomes live; rolls back otherwise", s.det.Inconclusive), dl[deadlineStalled]
		case !now.Before(o.At) && bakeGated(s) && !s.det.SkipBake && !s.det.Progress.Checked:
			o.Next, o.At = "green becomes live after a check passes at 100%", dl[deadlineCheck]
		}
	case PhaseRetiring:
		if s.det.BlueFenced {
			o.Next = "blue drains and stops"
		} else {
			o.Next, o.At = "blue retires", dl[deadlineKeepBlue]
			if s.det.SkipKeepBlue {
				o.At = time.Time{}
			}
		}
	case PhaseRollingBack:
		o.Next = "traffic is back on blue; green drains and stops"
	}
	return o
}
