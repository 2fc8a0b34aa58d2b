package engine

import (
	"time"

	"bluegreen/internal/spec"
)

// Progress is where a deployment stands in its strategy's steps.
type Progress struct {
	// Step is the index of the step being carried out; len(steps) once
	// every step is done.
	Step int `json:"step"`
	// Since is when the current step began (its weight was set).
	Since time.Time `json:"since"`
	// Promoted: a promote arrived while on this step; it ends the step's
	// pause, timed or not.
	Promoted bool `json:"promoted,omitempty"`
	// Checked: a check evaluation that did not fail happened on this step.
	Checked bool `json:"checked,omitempty"`
}

// Waiting says why a plan stays on its step.
type Waiting string

// Reasons to stay on a step.
const (
	WaitNone    Waiting = ""
	WaitPause   Waiting = "pause"   // a timed pause, until Plan.Until
	WaitPromote Waiting = "promote" // an indefinite pause, until `promote`
	WaitChecks  Waiting = "checks"  // a step without pause waits for one check evaluation that does not fail
)

// Plan is what the strategy wants now.
type Plan struct {
	Progress
	// Weight is green's share of production traffic, in percent.
	Weight int
	// Done: every step is done and green has 100 %.
	Done    bool
	Waiting Waiting
	// Until is the end of a timed pause (zero otherwise).
	Until time.Time
}

// NextPlan is the strategy as a pure function: from the steps, where the
// deployment stands, and the time, it says which step to be on, green's
// weight and what the plan waits for. It moves over every step whose
// condition to go on is already met, so a deployment resumed after a long
// stop catches up at once. full (`promote --full`) goes straight to 100 %.
// hasRules says whether the spec has check rules: a step without a pause
// then waits for one check evaluation that did not fail, so traffic never
// moves past a weight nobody has looked at.
func NextPlan(steps []spec.Step, p Progress, full, hasRules bool, now time.Time) Plan {
	if full {
		return Plan{Progress: Progress{Step: len(steps), Since: now}, Weight: 100, Done: true}
	}
	for p.Step < len(steps) {
		st := steps[p.Step]
		w := weightAt(steps, p.Step)
		last := p.Step == len(steps)-1
		switch {
		case p.Promoted:
			// promote ends whatever this step waits for
		case st.Pause != nil && st.Pause.Indefinite:
			return Plan{Progress: p, Weight: w, Waiting: WaitPromote}
		case st.Pause != nil && now.Before(p.Since.Add(st.Pause.Duration.D())):
			return Plan{Progress: p, Weight: w, Waiting: WaitPause, Until: p.Since.Add(st.Pause.Duration.D())}
		case st.Pause == nil && hasRules && !last && !p.Checked:
			return Plan{Progress: p, Weight: w, Waiting: WaitChecks}
		}
		p = Progress{Step: p.Step + 1, Since: now}
	}
	return Plan{Progress: p, Weight: 100, Done: true}
}

// weightAt is green's weight on step i: the last weight set at or before it.
func weightAt(steps []spec.Step, i int) int {
	for ; i >= 0; i-- {
		if steps[i].Weight != nil {
			return *steps[i].Weight
		}
	}
	return 0
}
