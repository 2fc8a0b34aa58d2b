package engine

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"bluegreen/internal/router"
	"bluegreen/internal/spec"
	"bluegreen/internal/stats"
)

// Buckets of the router's histogram (four per power of two of µs), in
// seconds: [16.384, 20.48) ms, [20.48, 24.576) ms, and so on.
var (
	b16 = [2]float64{0.016384, 0.02048}
	b20 = [2]float64{0.02048, 0.024576}
	b24 = [2]float64{0.024576, 0.028672}
	b1  = [2]float64{0.001024, 0.00128}
	b3  = [2]float64{0.003072, 0.003584}
)

type count struct {
	b [2]float64
	n uint64
}

// interval is a fleet's interval: its latency histogram and its errors.
func interval(errors uint64, counts ...count) FleetMetrics {
	m := FleetMetrics{Errors: errors}
	for _, c := range counts {
		m.Latency = append(m.Latency, router.LatencyBucket{From: c.b[0], To: c.b[1], Count: c.n})
		m.Requests += c.n
	}
	return m
}

func judgeChecks(j spec.JudgeRule) spec.Checks {
	return spec.Checks{Interval: spec.Duration(3 * time.Second), FailureLimit: 2, MinRequests: 50, Rules: []spec.Rule{{Judge: &j}}}
}

var defaultJudge = spec.JudgeRule{Confidence: 0.99, MinSamples: 100, MaxSlowdown: 1.1, MaxErrorIncrease: 0.01}

func TestJudge(t *testing.T) {
	blue := interval(0, count{b16, 280}, count{b20, 20})
	cases := []struct {
		name           string
		j              spec.JudgeRule
		green          FleetMetrics
		blue           *FleetMetrics
		latency, errs  Verdict
		latDetail, why string // parts of the latency part's detail
	}{
		{"identical", defaultJudge, interval(0, count{b16, 285}, count{b20, 15}), &blue, Pass, Pass, "not slower with 99% confidence", ""},
		{"30 % slower", defaultJudge, interval(0, count{b20, 270}, count{b24, 30}), &blue, Fail, Pass, "over 1.10×, and slower with 99% confidence", ""},
		{"slower, but within max_slowdown", spec.JudgeRule{Confidence: 0.99, MinSamples: 100, MaxSlowdown: 1.5, MaxErrorIncrease: 0.01},
			interval(0, count{b20, 270}, count{b24, 30}), &blue, Pass, Pass, "slower with 99% confidence, but within 1.50×", ""},
		// A million requests each, 1 % of them a bucket higher: surely
		// slower, by far less than max_slowdown.
		{"a million requests, 1 % slower", defaultJudge,
			interval(0, count{b16, 490_000}, count{b20, 510_000}), ptr(interval(0, count{b16, 500_000}, count{b20, 500_000})), Pass, Pass,
			"slower with 99% confidence, but within 1.10×", ""},
		// A fast app: 3 ms against 1 ms is significant, but blue's median
		// counts as at least 10 ms.
		{"fast app", defaultJudge, interval(0, count{b3, 300}), ptr(interval(0, count{b1, 300})), Pass, Pass, "the least blue counts as", ""},
		{"too few requests of green", defaultJudge, interval(0, count{b24, 99}), &blue, Inconclusive, Inconclusive, "green had 99 requests and blue 300", ""},
		{"no blue", defaultJudge, interval(0, count{b24, 300}), nil, Inconclusive, Inconclusive, "no blue to compare with", ""},
		{"no histogram", defaultJudge, FleetMetrics{Requests: 300}, &blue, Inconclusive, Pass, "no latency histogram", ""},
		{"errors well above blue's", defaultJudge, interval(30, count{b16, 300}), ptr(interval(1, count{b16, 300})), Pass, Fail, "", "over 1.00 points, and higher"},
		{"a few more errors than blue: not significant", defaultJudge, interval(4, count{b16, 300}), ptr(interval(2, count{b16, 300})), Pass, Pass, "", "not higher"},
		{"errors significantly higher, within the allowance", defaultJudge,
			interval(15_000, count{b16, 1_000_000}), ptr(interval(10_000, count{b16, 1_000_000})), Pass, Pass, "", "but within 1.00 points"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rs := EvaluateMetrics(judgeChecks(c.j), c.green, c.blue)
			if len(rs) != 2 || rs[0].Rule != ruleJudgeLatency || rs[1].Rule != ruleJudgeErrors {
				t.Fatalf("results %+v", rs)
			}
			lat, errs := rs[0], rs[1]
			if lat.Verdict != c.latency || !strings.Contains(lat.Detail, c.latDetail) {
				t.Errorf("latency: %s (%s), want %s with %q", lat.Verdict, lat.Detail, c.latency, c.latDetail)
			}
			if errs.Verdict != c.errs || !strings.Contains(errs.Detail, c.why) {
				t.Errorf("errors: %s (%s), want %s with %q", errs.Verdict, errs.Detail, c.errs, c.why)
			}
			for _, r := range rs {
				if r.Verdict != Inconclusive && r.Judge == nil {
					t.Errorf("%s: a verdict without its numbers", r.Rule)
				}
				// Recorded in an event: it must encode.
				if _, err := json.Marshal(r); err != nil {
					t.Errorf("%s: %v", r.Rule, err)
				}
			}
		})
	}
}

func ptr(m FleetMetrics) *FleetMetrics { return &m }

// TestJudgeRecordsItsNumbers checks what a verdict carries, on the 30 %
// slower case: every value is in one of two buckets, so the numbers can be
// worked by hand.
//
//	blue: 280 in [16.384, 20.48) ms, 20 in [20.48, 24.576) ms;
//	green: 270 in [20.48, 24.576) ms, 30 in [24.576, 28.672) ms.
//	U = 270·(280 + 20/2) + 30·300 = 87300; n·m/2 = 45000.
//	Medians: blue 16.384 + 4.096·150/280 = 18.578 ms; green 20.48 +
//	4.096·150/270 = 22.756 ms; 1.2249×.
func TestJudgeRecordsItsNumbers(t *testing.T) {
	green := interval(3, count{b20, 270}, count{b24, 30})
	blue := interval(1, count{b16, 280}, count{b20, 20})
	rs := EvaluateMetrics(judgeChecks(defaultJudge), green, &blue)
	n := rs[0].Judge
	if n == nil {
		t.Fatalf("no numbers: %+v", rs[0])
	}
	if n.Test != stats.TestMannWhitney || n.Statistic != 87300 || n.GreenSamples != 300 || n.BlueSamples != 300 ||
		!n.Significant || n.PValue >= 1e-10 || n.Alpha < 0.0099 || n.Alpha > 0.0101 || n.MaxEffect != 1.1 {
		t.Errorf("latency numbers %+v", n)
	}
	if d := n.ProbabilitySlower - 87300.0/90000; d*d > 1e-18 {
		t.Errorf("probability slower %v, want %v", n.ProbabilitySlower, 87300.0/90000)
	}
	within := func(what string, got, want float64) {
		if d := got - want; d*d > 1e-12 {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	within("green median", rs[0].Green*1000, 20.48+4.096*150/270)
	within("blue median", rs[0].Blue*1000, 16.384+4.096*150/280)
	within("effect", n.Effect, (20.48+4.096*150/270)/(16.384+4.096*150/280))
	within("limit", rs[0].Limit*1000, 1.1*(16.384+4.096*150/280))
	e := rs[1].Judge
	// 3 and 1 errors: too few for the z-test's normal approximation.
	if e == nil || e.Test != stats.TestFisherExact || e.Statistic != 3 || e.Significant || rs[1].Verdict != Pass {
		t.Errorf("error numbers %+v (%s)", e, rs[1].Detail)
	}
	within("error increase", e.Effect, 2.0/300)
}

// TestBlueToCompare checks where blue's numbers come from: the interval
// itself while blue has enough requests for every relative rule and the
// judge, the baseline after.
func TestBlueToCompare(t *testing.T) {
	c := judgeChecks(spec.JudgeRule{Confidence: 0.99, MinSamples: 200, MaxSlowdown: 1.1})
	s := &state{blue: &revision{}, det: details{Slot: "green", BlueSlot: "blue"}}
	before := interval(0, count{b16, 250})
	before.Targets = []router.TargetSnapshot{{Address: "127.0.0.1:1"}}
	b, base := blueToCompare(s, c, map[string]FleetMetrics{"blue": before, "green": interval(0, count{b16, 30})})
	if base || b == nil || b.Requests != 250 || s.det.BlueBaseline == nil || s.det.BlueBaseline.Targets != nil {
		t.Fatalf("blue with 250 requests: %+v, baseline %v, stored %+v", b, base, s.det.BlueBaseline)
	}
	// 150 requests: enough for min_requests, not for the judge's 200.
	b, base = blueToCompare(s, c, map[string]FleetMetrics{"blue": interval(0, count{b20, 150})})
	if !base || b.Requests != 250 {
		t.Fatalf("blue with 150 requests: %+v, baseline %v; want the baseline of 250", b, base)
	}
	rs := EvaluateMetrics(c, interval(0, count{b16, 300}), b)
	markBaseline(rs)
	for _, r := range rs {
		if r.Judge == nil || !r.Judge.Baseline || !strings.Contains(r.Detail, "baseline") {
			t.Errorf("%s does not say it used the baseline: %+v", r.Rule, r)
		}
	}
	// The baseline survives the deployment's details being stored.
	raw, err := json.Marshal(s.det)
	if err != nil {
		t.Fatal(err)
	}
	var det details
	if err := json.Unmarshal(raw, &det); err != nil || det.BlueBaseline == nil || len(det.BlueBaseline.Latency) != 1 || det.BlueBaseline.Latency[0].Count != 250 {
		t.Fatalf("stored baseline %+v, %v", det.BlueBaseline, err)
	}
	// No blue: nothing to compare with.
	first := &state{det: details{Slot: "green"}}
	if b, base := blueToCompare(first, c, map[string]FleetMetrics{"green": before}); b != nil || base {
		t.Errorf("a first deployment compares with %+v", b)
	}
}
