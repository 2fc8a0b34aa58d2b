package engine

import (
	"testing"
	"time"

	"bluegreen/internal/spec"
	"bluegreen/internal/store"
)

func TestOutlook(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	canary := []spec.Step{{Weight: w(10), Pause: pause(5 * time.Minute)}, {Weight: w(50), Pause: &spec.Pause{Indefinite: true}}, {Weight: w(100)}}
	rev := func(steps []spec.Step, rules bool) *revision {
		s := &spec.Spec{Strategy: spec.Strategy{Steps: steps, OnApprovalTimeout: "rollback"}}
		if rules {
			s.Checks.Rules = []spec.Rule{{ErrorRate: &spec.RateLimit{}}}
		}
		return &revision{Spec: s}
	}
	blue := rev(canary, false)
	cases := []struct {
		name    string
		phase   string
		det     details
		green   *revision
		dl      map[string]time.Time
		next    string
		at      time.Time
		waiting Waiting
	}{
		{"validating", PhaseValidating, details{}, rev(canary, false),
			map[string]time.Time{deadlineStartup: t0.Add(time.Minute)}, "green must be healthy", t0.Add(time.Minute), ""},
		{"approval", PhaseAwaitingApproval, details{}, rev(canary, false),
			map[string]time.Time{deadlineApproval: t0.Add(time.Hour)}, "waits for promote; on timeout: rollback", t0.Add(time.Hour), ""},
		{"timed pause", PhaseShifting, details{Weight: 10, Progress: Progress{Step: 0, Since: t0.Add(-time.Minute)}}, rev(canary, false),
			nil, "green goes to 50%", t0.Add(4 * time.Minute), WaitPause},
		{"indefinite pause", PhaseShifting, details{Weight: 50, Progress: Progress{Step: 1, Since: t0}}, rev(canary, false),
			nil, "waits for promote, then green goes to 100%", time.Time{}, WaitPromote},
		{"waits for a check", PhaseShifting, details{Weight: 10, Progress: Progress{Step: 0, Since: t0}}, rev([]spec.Step{{Weight: w(10)}, {Weight: w(40)}, {Weight: w(100)}}, true),
			map[string]time.Time{deadlineCheck: t0.Add(5 * time.Second)}, "green goes to 40% after a check passes", t0.Add(5 * time.Second), WaitChecks},
		{"baking", PhaseBaking, details{Weight: 100}, rev(canary, false),
			map[string]time.Time{deadlineBake: t0.Add(10 * time.Minute)}, "green becomes live", t0.Add(10 * time.Minute), ""},
		{"keeping blue", PhaseRetiring, details{Weight: 100}, rev(canary, false),
			map[string]time.Time{deadlineKeepBlue: t0.Add(54 * time.Minute)}, "blue retires", t0.Add(54 * time.Minute), ""},
		{"promoted keep time", PhaseRetiring, details{Weight: 100, SkipKeepBlue: true}, rev(canary, false),
			map[string]time.Time{deadlineKeepBlue: t0.Add(54 * time.Minute)}, "blue retires", time.Time{}, ""},
		{"draining blue", PhaseRetiring, details{Weight: 100, BlueFenced: true}, rev(canary, false),
			nil, "blue drains and stops", time.Time{}, ""},
	}
	for _, tc := range cases {
		s := &state{d: store.Deployment{Phase: tc.phase, Deadlines: tc.dl}, det: tc.det, green: tc.green, blue: blue}
		o := outlook(s, t0)
		if o.Next != tc.next || !o.At.Equal(tc.at) || o.Waiting != tc.waiting {
			t.Errorf("%s: got %q at %v (waiting %q), want %q at %v (waiting %q)", tc.name, o.Next, o.At, o.Waiting, tc.next, tc.at, tc.waiting)
		}
		if o.Steps != len(tc.green.Spec.Strategy.Steps) || o.Weight != tc.det.Weight {
			t.Errorf("%s: steps %d weight %d", tc.name, o.Steps, o.Weight)
		}
	}
}
