package engine

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"bluegreen/internal/spec"
	"bluegreen/internal/store"
	"bluegreen/internal/testprom"
)

// TestPrometheusRuleAgainstARealPrometheus judges queries answered by a
// real Prometheus: a vector, a scalar, several series, an empty result,
// NaN, infinity, a range vector, a string, and a query it refuses.
func TestPrometheusRuleAgainstARealPrometheus(t *testing.T) {
	p := testprom.Start(t, testprom.Options{})
	two := `label_replace(vector(0.9), "x", "a", "", "") or label_replace(vector(0.01), "x", "b", "", "")`
	cases := []struct {
		query    string
		min, max *float64
		verdict  Verdict
		green    float64
		detail   string
	}{
		{"vector(0.02)", nil, f(0.05), Pass, 0.02, "0.02 is within max 0.05 (vector(0.02))"},
		{"vector(0.2)", nil, f(0.05), Fail, 0.2, "0.2 is above max 0.05 (vector(0.2))"},
		{"vector(0.05)", nil, f(0.05), Pass, 0.05, "within max 0.05"},
		{"0.2", f(0.5), nil, Fail, 0.2, "0.2 is below min 0.5 (0.2)"},
		{"scalar(vector(0.3))", f(0.1), f(0.5), Pass, 0.3, "0.3 is within [0.1, 0.5]"},
		{two, nil, f(0.5), Fail, 0.9, `0.9 is above max 0.5 for {x="a"}`},
		{two, nil, f(1), Pass, 0.9, "; 2 series"},
		{"sum(bluegreen_no_such_metric)", nil, f(1), Inconclusive, 0, "no data (the result is empty)"},
		{"vector(0) / 0", nil, f(1), Inconclusive, 0, "the value is NaN"},
		{"vector(1) / 0", nil, f(1), Fail, 0, "+Inf is above max 1"},
		{"up[1m]", nil, f(1), Inconclusive, 0, "the query returns a range vector"},
		{`"text"`, nil, f(1), Inconclusive, 0, "the query returns a string, not a number"},
		{"sum(", nil, f(1), Inconclusive, 0, "refused the query (bad_data)"},
	}
	ctx := context.Background()
	for _, c := range cases {
		r := &spec.PrometheusRule{Query: c.query, Min: c.min, Max: c.max, Timeout: spec.Duration(10 * time.Second)}
		v, warnings, err := queryPrometheus(ctx, p.URL, c.query, r.Timeout.D(), time.Now())
		got := judgePrometheus(r, c.query, v, warnings, err)
		if got.Verdict != c.verdict || !strings.Contains(got.Detail, c.detail) || c.verdict != Inconclusive && c.green != 0 && got.Green != c.green {
			t.Errorf("%s: %s %v %q; want %s %v with %q", c.query, got.Verdict, got.Green, got.Detail, c.verdict, c.green, c.detail)
		}
	}
}

// TestPrometheusRuleWithoutAnAnswer: a Prometheus that does not answer in
// time, nothing listening, a URL that is not Prometheus's API, or no
// Prometheus at all make the rule inconclusive, with the reason.
func TestPrometheusRuleWithoutAnAnswer(t *testing.T) {
	p := testprom.Start(t, testprom.Options{})
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() { // accepts, never answers
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	e := &Engine{now: time.Now}
	s := &state{d: store.Deployment{App: "shop"}, det: details{Slot: "blue"}, green: &revision{Revision: store.Revision{Generation: 7}}}
	rule := func(timeout time.Duration) *spec.PrometheusRule {
		return &spec.PrometheusRule{Query: `sum(rate(bluegreen_router_fleet_requests_total{app="${app}",fleet="${fleet}",revision="${revision}"}[${interval}]))`,
			Max: f(0.05), Timeout: spec.Duration(timeout)}
	}
	checks := func(base string) spec.Checks {
		return spec.Checks{Interval: spec.Duration(10 * time.Second), Prometheus: base}
	}
	ctx := context.Background()
	for _, c := range []struct {
		name, base string
		timeout    time.Duration
		want       string
	}{
		{"no Prometheus named", "", time.Second, "no Prometheus to ask: set checks.prometheus"},
		{"a silent server", "http://" + silent.Addr().String(), 200 * time.Millisecond, "no answer from Prometheus http://" + silent.Addr().String() + " within 200ms (timeout)"},
		{"nothing listens", "http://alice:hunter2@" + closedAddr, time.Second, "asking Prometheus http://alice:xxxxx@" + closedAddr},
		{"not the API", p.URL + "/not-prometheus", 5 * time.Second, "answered 404 Not Found, not the Prometheus API"},
		// Placeholders are filled for green: app, its slot, its revision, the interval.
		{"no data yet", p.URL, 5 * time.Second, `{app="shop",fleet="blue",revision="7"}[10s]`},
	} {
		got := e.prometheusCheck(ctx, s, checks(c.base), rule(c.timeout))
		if got.Verdict != Inconclusive || !strings.Contains(got.Detail, c.want) || strings.Contains(got.Detail, "hunter2") {
			t.Errorf("%s: %s %q; want inconclusive with %q", c.name, got.Verdict, got.Detail, c.want)
		}
	}
	// The server's Prometheus serves a spec that names none.
	e.opts.Prometheus = p.URL
	if got := e.prometheusCheck(ctx, s, checks(""), rule(5*time.Second)); !strings.Contains(got.Detail, "no data") {
		t.Errorf("with the server's Prometheus: %s %q", got.Verdict, got.Detail)
	}
}

func TestPromDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{10 * time.Second: "10s", 90 * time.Second: "90s", 1500 * time.Millisecond: "1500ms", time.Microsecond: "1ms"} {
		if got := promDuration(d); got != want {
			t.Errorf("promDuration(%s) = %s, want %s", d, got, want)
		}
	}
}

// TestRollbackCause classifies the engine's own reasons.
func TestRollbackCause(t *testing.T) {
	for reason, want := range map[string]string{
		"aborted":                                CauseRequested,
		"aborted: checks failed 3 times":         CauseRequested,
		"rollback requested while blue was warm": CauseRequested,
		"checks failed 2 times in a row: prometheus 0.3 is above max 0.05":                     CauseChecksFailed,
		"5 check evaluations in a row were inconclusive (error_rate.max: 3 requests)":          CauseChecksStalled,
		"nobody promoted within 24h after 5 inconclusive check evaluations in a row":           CauseChecksStalled,
		"hook validate_service[0] failed: exit status 3":                                       CauseHookFailed,
		"hooks before_install cannot run: user 1234 is not allowed":                            CauseHookFailed,
		"green never became healthy: 0 of 2 passed /healthz within 10s":                        CauseUnhealthy,
		"green target 127.0.0.1:4000 failed its health check: 503":                             CauseUnhealthy,
		"green instance shop-2-green-0 exited with code 1":                                     CauseInstanceExited,
		"green has 1 of 2 instances running":                                                   CauseInstanceExited,
		"approval timed out after 24h":                                                         CauseApprovalTimeout,
		"progress deadline: Validating did not move on within 30m":                             CauseProgressDeadline,
		"Provisioning kept failing for 30m (progress_deadline): disk full":                     CauseProgressDeadline,
		"the router refused the routes of app shop: host a.example is claimed by app cart":     CauseRouterRefused,
		"launching shop-2-green-0: image shop:2 is not on the docker engine at unix:///d.sock": CauseImageUnavailable,
		"unpacking revision 2: no space left on device":                                        CauseOther,
	} {
		if got := rollbackCause(reason); got != want {
			t.Errorf("rollbackCause(%q) = %s, want %s", reason, got, want)
		}
	}
}
