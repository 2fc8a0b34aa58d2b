package engine

import (
	"context"
	"strings"

	"bluegreen/internal/spec"
)

// blueToCompare picks the numbers of blue that relative rules and the
// judge compare green with. While blue has enough requests in the interval
// for all of them (checks.min_requests, and the judge's min_samples), they
// are blue's own in the same interval, and become blue's baseline. When it
// has fewer (at 100 % green, during the bake, blue has none), they are the
// baseline: blue's numbers in the last interval in which it had enough,
// which may be the one just before green took production traffic. The
// second result says that the baseline was used. Without a blue (an app's
// first deployment) there is nothing to compare with.
func blueToCompare(s *state, c spec.Checks, m map[string]FleetMetrics) (*FleetMetrics, bool) {
	bf, ok := s.blueFleet()
	if !ok {
		return nil, false
	}
	var blue *FleetMetrics
	if b, ok := m[bf.slot]; ok {
		blue = &b
	}
	need := uint64(max(c.MinRequests, c.JudgeMinSamples(), 1))
	switch {
	case blue != nil && blue.Requests >= need:
		b := *blue
		b.Targets = nil
		s.det.BlueBaseline = &b
	case s.det.BlueBaseline != nil:
		return s.det.BlueBaseline, true
	}
	return blue, false
}

// noteBaseline records blue's numbers over the last check interval as its
// baseline, just before green first takes production traffic: so that a
// strategy that moves all traffic at once (AllAtOnce, whose first check
// comes when blue no longer has any) still has blue's own numbers to
// compare green with during the bake.
func (e *Engine) noteBaseline(ctx context.Context, s *state) error {
	c := s.green.Spec.Checks
	if _, ok := s.blueFleet(); !ok || len(c.Rules) == 0 {
		return nil
	}
	if s.isStack() {
		return e.noteStackBaselines(ctx, s)
	}
	m, err := e.opts.Traffic.Metrics(ctx, s.d.App, c.Interval.D())
	if err != nil {
		return err
	}
	blueToCompare(s, c, m)
	return nil
}

// markBaseline says, in each result of a relative rule or of the judge,
// that blue's numbers were its baseline.
func markBaseline(results []RuleResult) {
	for i := range results {
		r := &results[i]
		if strings.HasSuffix(r.Rule, "_vs_blue") || r.Judge != nil || strings.HasPrefix(r.Rule, "judge.") {
			r.Detail += " (blue's baseline from before the switch)"
			if r.Judge != nil {
				r.Judge.Baseline = true
			}
		}
	}
}
