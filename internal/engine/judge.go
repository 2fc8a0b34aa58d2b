package engine

import (
	"fmt"
	"math"
	"time"

	"bluegreen/internal/router"
	"bluegreen/internal/spec"
	"bluegreen/internal/stats"
)

// JudgeNumbers are what one test of the judge saw and concluded, recorded
// with its verdict so that a reader can check it: the test, its statistic
// and p-value, the effect and its allowance, and the sample sizes. The
// medians or rates compared are the result's Green and Blue.
type JudgeNumbers struct {
	// Test is stats.TestMannWhitney, stats.TestTwoProportionZ or
	// stats.TestFisherExact.
	Test string `json:"test"`
	// Statistic is the test's own: U for Mann-Whitney, z for the z-test,
	// green's errors for Fisher's test.
	Statistic float64 `json:"statistic"`
	// Z is the normal score behind the p-value (none for Fisher's test).
	Z float64 `json:"z,omitempty"`
	// PValue is one-sided: the chance of green looking this much worse
	// were it as good as blue. Significant when below Alpha.
	PValue      float64 `json:"p_value"`
	Alpha       float64 `json:"alpha"`
	Significant bool    `json:"significant"`
	// Effect is how much worse green is: its median latency over blue's
	// (blue's counted as at least 10 ms), or its error rate less blue's.
	// A part fails when it is significant and Effect is above MaxEffect.
	Effect    float64 `json:"effect"`
	MaxEffect float64 `json:"max_effect"`
	// ProbabilitySlower is, for latency, the chance that a request to
	// green took longer than one to blue, ties counted half: 0.5 is no
	// difference (the common-language effect size, U / (n·m)).
	ProbabilitySlower float64 `json:"probability_slower,omitempty"`
	GreenSamples      uint64  `json:"green_samples"`
	BlueSamples       uint64  `json:"blue_samples"`
	// Baseline: blue's numbers are its baseline from before the switch.
	Baseline bool `json:"baseline,omitempty"`
}

// Rule names of the judge's two parts.
const (
	ruleJudgeLatency = "judge.latency"
	ruleJudgeErrors  = "judge.error_rate"
)

// judgeRule runs both parts of a judge rule on green's and blue's numbers
// over the interval.
func judgeRule(j *spec.JudgeRule, green FleetMetrics, blue *FleetMetrics) []RuleResult {
	return []RuleResult{judgeLatency(j, green, blue), judgeErrors(j, green, blue)}
}

// tooFew says why a part cannot conclude, or "" when it can.
func tooFew(j *spec.JudgeRule, green, blue uint64, haveBlue bool) string {
	need := uint64(j.MinSamples)
	switch {
	case !haveBlue:
		return "no blue to compare with"
	case green < need || blue < need:
		return fmt.Sprintf("green had %d requests and blue %d; the judge needs min_samples %d of each", green, blue, need)
	}
	return ""
}

func judgeLatency(j *spec.JudgeRule, green FleetMetrics, blue *FleetMetrics) RuleResult {
	r := RuleResult{Rule: ruleJudgeLatency, Verdict: Inconclusive}
	gh := histogram(green.Latency)
	var bh stats.Histogram
	if blue != nil {
		bh = histogram(blue.Latency)
	}
	gn, bn := gh.Total(), bh.Total()
	if why := tooFew(j, gn, bn, blue != nil); why != "" {
		if gn == 0 && green.Requests > 0 || blue != nil && bn == 0 && blue.Requests > 0 {
			why += " (the router gave no latency histogram: it may predate the judge)"
		}
		r.Detail = why
		return r
	}
	mw, err := stats.MannWhitneyGreater(gh, bh)
	if err != nil {
		r.Detail = err.Error()
		return r
	}
	gm, bm := gh.Median(), bh.Median()
	floor := latencyFloor.Seconds()
	n := &JudgeNumbers{
		Test: stats.TestMannWhitney, Statistic: mw.U, Z: mw.Z, PValue: mw.P, Alpha: alpha(j.Confidence),
		Effect: gm / math.Max(bm, floor), MaxEffect: j.MaxSlowdown, ProbabilitySlower: mw.CLES,
		GreenSamples: mw.NA, BlueSamples: mw.NB,
	}
	n.Significant = n.PValue < n.Alpha
	r.Green, r.Blue, r.Limit, r.Judge = gm, bm, math.Max(bm, floor)*j.MaxSlowdown, n
	medians := fmt.Sprintf("median %s against blue's %s (%.2f×", tenths(gm), tenths(bm), n.Effect)
	if bm < floor {
		medians += fmt.Sprintf(" of %s, the least blue counts as", latencyFloor)
	}
	test := fmt.Sprintf("Mann-Whitney U p=%.3g, %d/%d requests", n.PValue, n.GreenSamples, n.BlueSamples)
	r.Verdict, r.Detail = verdict(n, medians+")", fmt.Sprintf("%.2f×", j.MaxSlowdown), "slower", j.Confidence, test)
	return r
}

func judgeErrors(j *spec.JudgeRule, green FleetMetrics, blue *FleetMetrics) RuleResult {
	r := RuleResult{Rule: ruleJudgeErrors, Verdict: Inconclusive}
	var bn, bx uint64
	if blue != nil {
		bn, bx = blue.Requests, blue.Errors
	}
	if why := tooFew(j, green.Requests, bn, blue != nil); why != "" {
		r.Detail = why
		return r
	}
	p := stats.ProportionGreater(green.Errors, green.Requests, bx, bn)
	gr, br := green.ErrorRate(), blue.ErrorRate()
	n := &JudgeNumbers{
		Test: p.Test, Statistic: p.Z, Z: p.Z, PValue: p.P, Alpha: alpha(j.Confidence),
		Effect: gr - br, MaxEffect: j.MaxErrorIncrease, GreenSamples: green.Requests, BlueSamples: bn,
	}
	if p.Test == stats.TestFisherExact {
		n.Statistic = float64(green.Errors)
	}
	n.Significant = n.PValue < n.Alpha
	r.Green, r.Blue, r.Limit, r.Judge = gr, br, br+j.MaxErrorIncrease, n
	rates := fmt.Sprintf("error rate %.2f%% against blue's %.2f%% (%+.2f points)", 100*gr, 100*br, 100*n.Effect)
	name := map[string]string{stats.TestTwoProportionZ: "two-proportion z", stats.TestFisherExact: "Fisher's exact"}[p.Test]
	test := fmt.Sprintf("%s p=%.3g, %d/%d requests", name, n.PValue, n.GreenSamples, n.BlueSamples)
	r.Verdict, r.Detail = verdict(n, rates, fmt.Sprintf("%.2f points", 100*j.MaxErrorIncrease), "higher", j.Confidence, test)
	return r
}

// verdict fails a part only when green is significantly worse and by more
// than its allowance, and says which of the two held.
func verdict(n *JudgeNumbers, what, allowance, worse string, confidence float64, test string) (Verdict, string) {
	conf := fmt.Sprintf("%g%% confidence", 100*confidence)
	switch {
	case n.Significant && n.Effect > n.MaxEffect:
		return Fail, fmt.Sprintf("%s, over %s, and %s with %s (%s)", what, allowance, worse, conf, test)
	case n.Significant:
		return Pass, fmt.Sprintf("%s: %s with %s, but within %s (%s)", what, worse, conf, allowance, test)
	default:
		return Pass, fmt.Sprintf("%s: not %s with %s (%s)", what, worse, conf, test)
	}
}

// alpha is the significance level of a confidence, without the float
// noise of 1 − 0.99.
func alpha(confidence float64) float64 { return math.Round((1-confidence)*1e12) / 1e12 }

// tenths shows a latency in seconds to a tenth of a millisecond: the
// judge compares medians finer than the checks' whole milliseconds.
func tenths(s float64) string { return seconds(s).Round(100 * time.Microsecond).String() }

// histogram turns the router's buckets into the judge's.
func histogram(bs []router.LatencyBucket) stats.Histogram {
	h := make(stats.Histogram, 0, len(bs))
	for _, b := range bs {
		hi := b.To
		if hi == 0 {
			hi = math.Inf(1)
		}
		h = append(h, stats.Bin{Lo: b.From, Hi: hi, Count: b.Count})
	}
	return h
}
