package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"bluegreen/internal/api"
)

// outcome is what one deployment showed.
type outcome struct {
	outcome, reason string
	// evaluations counts the check evaluations; sameWindow those with blue
	// measured in the same interval, baseline those against blue's baseline.
	evaluations, sameWindow, baseline int
	// tests counts the judge's conclusive tests (latency and error rate),
	// significant those that found green worse with the confidence asked
	// for, failed those that also found it worse than the allowance; by
	// whether blue was measured in the same window or was its baseline.
	tests, significant, failed [2]int
	// effects are the latency effects (green's median over blue's) seen.
	effects []float64
	// toRollback is from green's first production traffic to the rollback.
	toRollback time.Duration
	byJudge    bool
}

type judged struct {
	Rule    string `json:"rule"`
	Verdict string `json:"verdict"`
	Judge   *struct {
		Effect      float64 `json:"effect"`
		Significant bool    `json:"significant"`
		Baseline    bool    `json:"baseline"`
	} `json:"judge"`
}

func analyse(d api.Deployment, evs []api.Event) outcome {
	o := outcome{outcome: d.Outcome, reason: d.Reason, byJudge: d.Outcome == "rolled_back" && strings.Contains(d.Reason, "judge.")}
	var traffic time.Time
	for _, ev := range evs {
		switch {
		case ev.Kind == "traffic" && traffic.IsZero():
			traffic = ev.Time
		case ev.Kind == "phase" && ev.Fields["phase"] == "RollingBack" && !traffic.IsZero():
			o.toRollback = ev.Time.Sub(traffic)
		case ev.Kind == "check":
			o.evaluations++
			raw, _ := json.Marshal(ev.Fields["results"])
			var rs []judged
			_ = json.Unmarshal(raw, &rs)
			base := false
			for _, r := range rs {
				if r.Judge == nil {
					continue
				}
				k := 0
				if r.Judge.Baseline {
					k = 1
				}
				o.tests[k]++
				if r.Judge.Significant {
					o.significant[k]++
				}
				if r.Verdict == "fail" {
					o.failed[k]++
				}
				base = base || r.Judge.Baseline
				if r.Rule == "judge.latency" {
					o.effects = append(o.effects, r.Judge.Effect)
				}
			}
			if base {
				o.baseline++
			} else {
				o.sameWindow++
			}
		}
	}
	return o
}

func (o outcome) line() string {
	s := fmt.Sprintf("%-11s %d evaluations (%d same window, %d against blue's baseline), judge tests: %d, %d significant, %d failed",
		o.outcome, o.evaluations, o.sameWindow, o.baseline, o.tests[0]+o.tests[1], o.significant[0]+o.significant[1], o.failed[0]+o.failed[1])
	if len(o.effects) > 0 {
		s += fmt.Sprintf(", green's median latency %.2f–%.2f× blue's", slices.Min(o.effects), slices.Max(o.effects))
	}
	if o.outcome != "succeeded" {
		s += fmt.Sprintf(", after %.1fs: %s", o.toRollback.Seconds(), o.reason)
	}
	return s
}

func report(o options, slow time.Duration, same, slower []outcome) {
	var fp int
	var tests, significant, failed [2]int
	for _, r := range same {
		if r.outcome != "succeeded" {
			fp++
		}
		for k := range 2 {
			tests[k] += r.tests[k]
			significant[k] += r.significant[k]
			failed[k] += r.failed[k]
		}
	}
	fmt.Printf("\nIdentical green (%s against %s), %d deployments:\n", o.latency, o.latency, len(same))
	fmt.Printf("  false positives: %d of %d deployments rolled back\n", fp, len(same))
	for k, what := range []string{"blue in the same window", "blue's baseline"} {
		fmt.Printf("  judge tests against %s: %d conclusive; %d found green significantly worse, %d of them beyond the allowance (failed)\n",
			what, tests[k], significant[k], failed[k])
	}
	if len(slower) == 0 {
		return
	}
	var caught int
	var evals []int
	var times []time.Duration
	for _, r := range slower {
		if r.byJudge {
			caught++
			evals = append(evals, r.evaluations)
			times = append(times, r.toRollback)
		}
	}
	fmt.Printf("Slower green (%s against %s, %.0f %% slower), %d deployments:\n", slow, o.latency, 100*(o.slowdown-1), len(slower))
	fmt.Printf("  rolled back by the judge: %d of %d\n", caught, len(slower))
	if caught > 0 {
		slices.Sort(evals)
		slices.Sort(times)
		fmt.Printf("  intervals to detect: median %d (min %d, max %d), with failure_limit %d\n", evals[len(evals)/2], evals[0], evals[len(evals)-1], o.failureLimit)
		fmt.Printf("  from green's first traffic to the rollback: median %.1fs (min %.1fs, max %.1fs)\n",
			times[len(times)/2].Seconds(), times[0].Seconds(), times[len(times)-1].Seconds())
	}
}
