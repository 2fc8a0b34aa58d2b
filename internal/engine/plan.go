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
	// Checked: the latest conclusive check evaluation on this step passed
	// (a failed one clears it again; an inconclusive one changes nothing).
	Checked bool `json:"checked,omitempty"`
}

// Waiting says why a plan stays on its step.
type Waiting string

// Reasons to stay on a step.
const (
	WaitNone    Waiting = ""
	WaitPause   Waiting = "pause"   // a timed pause, until Plan.Until
	WaitPromote Waiting = "promote" // an indefinite pause, until `promote`
	WaitChecks  Waiting = "checks"  // the step waits for a check evaluation that passes at its weight
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
// gated says that check rules watch the shift: a step after which green's
// weight grows then ends only once an evaluation passed at its weight (and
// its pause, if any, is over), so the weight never grows past a weight
// that failed or that nobody could judge. A promote ends the step regardless.
func NextPlan(steps []spec.Step, p Progress, full, gated bool, now time.Time) Plan {
	if full {
		return Plan{Progress: Progress{Step: len(steps), Since: now}, Weight: 100, Done: true}
	}
	for p.Step < len(steps) {
		st := steps[p.Step]
		w := weightAt(steps, p.Step)
		switch {
		case p.Promoted:
			// promote ends whatever this step waits for
		case st.Pause != nil && st.Pause.Indefinite:
			return Plan{Progress: p, Weight: w, Waiting: WaitPromote}
		case st.Pause != nil && now.Before(p.Since.Add(st.Pause.Duration.D())):
			return Plan{Progress: p, Weight: w, Waiting: WaitPause, Until: p.Since.Add(st.Pause.Duration.D())}
		case gated && w > 0 && nextWeight(steps, p.Step) > w && !p.Checked:
			return Plan{Progress: p, Weight: w, Waiting: WaitChecks}
		}
		p = Progress{Step: p.Step + 1, Since: now}
	}
	return Plan{Progress: p, Weight: 100, Done: true}
}

// nextWeight is green's weight after step i: the next step's, or 100.
func nextWeight(steps []spec.Step, i int) int {
	if i+1 < len(steps) {
		return weightAt(steps, i+1)
	}
	return 100
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
