package engine

import (
	"testing"
	"time"

	"bluegreen/internal/spec"
)

func f(v float64) *float64 { return &v }

func dur(d time.Duration) *spec.Duration { x := spec.Duration(d); return &x }

func TestEvaluateMetrics(t *testing.T) {
	checks := func(rules ...spec.Rule) spec.Checks {
		return spec.Checks{Interval: spec.Duration(10 * time.Second), FailureLimit: 2, MinRequests: 50, Rules: rules}
	}
	errMax := spec.Rule{ErrorRate: &spec.RateLimit{Max: f(0.01)}}
	errVsBlue := spec.Rule{ErrorRate: &spec.RateLimit{MaxVsBlue: f(2)}}
	p99Max := spec.Rule{LatencyP99: &spec.LatencyLimit{Max: dur(500 * time.Millisecond)}}
	p95VsBlue := spec.Rule{LatencyP95: &spec.LatencyLimit{MaxVsBlue: f(1.5)}}
	p50Both := spec.Rule{LatencyP50: &spec.LatencyLimit{Max: dur(time.Second), MaxVsBlue: f(2)}}

	healthy := FleetMetrics{Requests: 1000, Errors: 1, P50: 10 * time.Millisecond, P95: 40 * time.Millisecond, P99: 80 * time.Millisecond}
	blue := &FleetMetrics{Requests: 1000, Errors: 2, P50: 10 * time.Millisecond, P95: 40 * time.Millisecond, P99: 90 * time.Millisecond}

	cases := []struct {
		name  string
		c     spec.Checks
		green FleetMetrics
		blue  *FleetMetrics
		want  []Verdict
		all   Verdict
	}{
		{"within every limit", checks(errMax, errVsBlue, p99Max, p95VsBlue, p50Both), healthy, blue,
			[]Verdict{Pass, Pass, Pass, Pass, Pass, Pass}, Pass},
		{"5xx share over max", checks(errMax), FleetMetrics{Requests: 100, Errors: 30}, blue, []Verdict{Fail}, Fail},
		{"error rate at the max passes", checks(errMax), FleetMetrics{Requests: 100, Errors: 1}, nil, []Verdict{Pass}, Pass},
		{"quiet interval is inconclusive", checks(errMax, p99Max), FleetMetrics{Requests: 49, Errors: 49, P99: time.Hour}, blue,
			[]Verdict{Inconclusive, Inconclusive}, Inconclusive},
		{"relative error rate against a clean blue uses the floor", checks(errVsBlue), FleetMetrics{Requests: 1000, Errors: 1},
			&FleetMetrics{Requests: 1000}, []Verdict{Pass}, Pass},
		{"relative error rate: three times blue fails", checks(errVsBlue), FleetMetrics{Requests: 1000, Errors: 60},
			&FleetMetrics{Requests: 1000, Errors: 20}, []Verdict{Fail}, Fail},
		{"relative rule without blue is inconclusive", checks(p95VsBlue), healthy, nil, []Verdict{Inconclusive}, Inconclusive},
		{"relative rule with a quiet blue is inconclusive", checks(p95VsBlue), healthy, &FleetMetrics{Requests: 10, P95: time.Millisecond},
			[]Verdict{Inconclusive}, Inconclusive},
		{"latency twice blue's fails a 1.5 ratio", checks(p95VsBlue), FleetMetrics{Requests: 100, P95: 80 * time.Millisecond}, blue,
			[]Verdict{Fail}, Fail},
		{"absolute latency over max fails", checks(p99Max), FleetMetrics{Requests: 100, P99: 600 * time.Millisecond}, nil, []Verdict{Fail}, Fail},
		{"one failing part fails the evaluation", checks(p50Both), FleetMetrics{Requests: 100, P50: 30 * time.Millisecond}, blue,
			[]Verdict{Pass, Fail}, Fail},
		{"no rules pass", checks(), healthy, blue, nil, Pass},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := EvaluateMetrics(c.c, c.green, c.blue)
			if len(got) != len(c.want) {
				t.Fatalf("got %d results %+v, want %d", len(got), got, len(c.want))
			}
			for i, r := range got {
				if r.Verdict != c.want[i] {
					t.Errorf("result %d (%s) = %s (%s), want %s", i, r.Rule, r.Verdict, r.Detail, c.want[i])
				}
				if r.Detail == "" {
					t.Errorf("result %d has no detail", i)
				}
			}
			if v := Overall(got); v != c.all {
				t.Errorf("Overall = %s, want %s", v, c.all)
			}
		})
	}
}
