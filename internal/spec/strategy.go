package spec

import "fmt"

func (s *Spec) validateStrategy(c *collector) {
	st := s.Strategy
	switch {
	case st.Preset != "" && len(st.Steps) > 0:
		c.add("strategy.preset", "set preset or steps, not both")
	case st.Preset != "":
		if _, err := ExpandPreset(st.Preset); err != nil {
			c.add("strategy.preset", "%s", err)
		}
	}
	validateSteps(c, st.Steps)
	oneOf(c, "strategy.approval", st.Approval, ApprovalAuto, ApprovalManual)
	positive(c, "strategy.approval_timeout", st.ApprovalTimeout, false)
	oneOf(c, "strategy.on_approval_timeout", st.OnApprovalTimeout, TimeoutRollback, TimeoutContinue)
	positive(c, "strategy.progress_deadline", st.ProgressDeadline, false)
}

// validateSteps checks that weights rise from 0 to exactly 100 and that every
// pause is meaningful.
func validateSteps(c *collector, steps []Step) {
	prev := 0
	for i, st := range steps {
		p := fmt.Sprintf("strategy.steps[%d]", i)
		if st.Weight == nil && st.Pause == nil {
			c.add(p, "a step sets weight, pause or both; write {pause: {}} to wait for promote")
			continue
		}
		if st.Weight != nil {
			switch w := *st.Weight; {
			case w < 0 || w > 100:
				c.add(p+".weight", "weight must be between 0 and 100, got %d", w)
			case w <= prev:
				c.add(p+".weight", "weights must rise: %d is not above the previous weight %d", w, prev)
			default:
				prev = w
			}
		}
		if st.Pause != nil && !st.Pause.Indefinite && st.Pause.Duration <= 0 {
			c.add(p+".pause", "a pause must be longer than 0s; leave it out, or write {} to wait for promote")
		}
	}
	if len(steps) == 0 {
		return
	}
	last := steps[len(steps)-1]
	p := fmt.Sprintf("strategy.steps[%d]", len(steps)-1)
	switch {
	case last.Weight != nil && (*last.Weight < 0 || *last.Weight > 100):
		// already reported as out of range
	case last.Weight == nil || *last.Weight != 100:
		c.add(p, "the last step must set weight 100, so that green ends with all the traffic")
	case last.Pause != nil:
		c.add(p+".pause", "a pause after weight 100 waits with all traffic on green; use bake for that")
	}
}
