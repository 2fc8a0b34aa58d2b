package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"bluegreen/internal/spec"
)

// Verdicts of a rule or of an evaluation.
type Verdict string

// Verdicts.
const (
	Pass         Verdict = "pass"
	Fail         Verdict = "fail"
	Inconclusive Verdict = "inconclusive"
)

// RuleResult is one rule's verdict with the numbers it saw.
type RuleResult struct {
	Rule string `json:"rule"`
	// Service is the service of a stack the rule judged ("" for an app of
	// one service, and for command and webhook rules).
	Service string  `json:"service,omitempty"`
	Verdict Verdict `json:"verdict"`
	// Green and Blue are the measured values (rate, or seconds); Limit
	// the bound they were held to.
	Green  float64 `json:"green"`
	Blue   float64 `json:"blue,omitempty"`
	Limit  float64 `json:"limit,omitempty"`
	Detail string  `json:"detail"`
	// Judge holds the numbers of a judge rule's test.
	Judge *JudgeNumbers `json:"judge,omitempty"`
}

// latencyFloor keeps a relative latency rule meaningful for a fast app:
// blue's percentile is taken as at least this, so that the scheduling
// noise of a busy machine (a p99 of 3 ms against 1 ms) is not "three times
// slower".
const latencyFloor = 10 * time.Millisecond

// errorRateFloor keeps a relative error-rate rule meaningful when blue had
// no errors at all: green is compared with at least this rate times the
// ratio, so a single 5xx on green is not "infinitely worse".
const errorRateFloor = 0.001

// EvaluateMetrics judges the metric rules on green's and blue's numbers
// over one interval. A rule is inconclusive when green had fewer than
// min_requests requests, and its relative part when blue had (or there is
// no blue). It is a pure function; command and webhook rules are run by
// the engine.
func EvaluateMetrics(c spec.Checks, green FleetMetrics, blue *FleetMetrics) []RuleResult {
	var out []RuleResult
	enough := green.Requests >= uint64(c.MinRequests)
	blueEnough := blue != nil && blue.Requests >= uint64(c.MinRequests) && blue.Requests > 0
	for _, r := range c.Rules {
		switch {
		case r.ErrorRate != nil:
			g := green.ErrorRate()
			if r.ErrorRate.Max != nil {
				out = append(out, judge("error_rate.max", enough, g, 0, *r.ErrorRate.Max, c.MinRequests, green.Requests))
			}
			if r.ErrorRate.MaxVsBlue != nil {
				b := 0.0
				if blue != nil {
					b = blue.ErrorRate()
				}
				res := judge("error_rate.max_vs_blue", enough && blueEnough, g, b, max(b, errorRateFloor)**r.ErrorRate.MaxVsBlue, c.MinRequests, green.Requests)
				if enough && !blueEnough {
					res.Detail = "blue had too few requests to compare with"
				}
				out = append(out, res)
			}
		case r.LatencyP50 != nil:
			out = append(out, latency("latency_p50", r.LatencyP50, green.P50, blue, func(m *FleetMetrics) time.Duration { return m.P50 }, enough, blueEnough, c.MinRequests, green.Requests)...)
		case r.LatencyP95 != nil:
			out = append(out, latency("latency_p95", r.LatencyP95, green.P95, blue, func(m *FleetMetrics) time.Duration { return m.P95 }, enough, blueEnough, c.MinRequests, green.Requests)...)
		case r.LatencyP99 != nil:
			out = append(out, latency("latency_p99", r.LatencyP99, green.P99, blue, func(m *FleetMetrics) time.Duration { return m.P99 }, enough, blueEnough, c.MinRequests, green.Requests)...)
		case r.Judge != nil:
			out = append(out, judgeRule(r.Judge, green, blue)...)
		}
	}
	return out
}

func latency(name string, l *spec.LatencyLimit, g time.Duration, blue *FleetMetrics, pick func(*FleetMetrics) time.Duration, enough, blueEnough bool, minReq int, n uint64) []RuleResult {
	var out []RuleResult
	if l.Max != nil {
		out = append(out, judge(name+".max", enough, g.Seconds(), 0, l.Max.D().Seconds(), minReq, n))
	}
	if l.MaxVsBlue != nil {
		b := 0.0
		if blue != nil {
			b = pick(blue).Seconds()
		}
		res := judge(name+".max_vs_blue", enough && blueEnough, g.Seconds(), b, max(b, latencyFloor.Seconds())**l.MaxVsBlue, minReq, n)
		if enough && !blueEnough {
			res.Detail = "blue had too few requests to compare with"
		}
		out = append(out, res)
	}
	return out
}

func judge(rule string, conclusive bool, green, blue, limit float64, minReq int, n uint64) RuleResult {
	r := RuleResult{Rule: rule, Green: green, Blue: blue, Limit: limit}
	switch {
	case !conclusive:
		r.Verdict = Inconclusive
		r.Detail = fmt.Sprintf("%d requests, fewer than min_requests %d", n, minReq)
	case green > limit:
		r.Verdict = Fail
		r.Detail = fmt.Sprintf("%.4g is above %.4g", green, limit)
	default:
		r.Verdict = Pass
		r.Detail = fmt.Sprintf("%.4g is within %.4g", green, limit)
	}
	return r
}

// Overall is an evaluation's verdict: failed if any rule failed, passed if
// every rule passed, inconclusive otherwise.
func Overall(rs []RuleResult) Verdict {
	v := Pass
	for _, r := range rs {
		switch r.Verdict {
		case Fail:
			return Fail
		case Inconclusive:
			v = Inconclusive
		}
	}
	return v
}

// checkIfDue evaluates the checks when their time has come, records the
// evaluation as an event with the numbers it saw, and rolls back after
// failure_limit consecutive failures.
func (e *Engine) checkIfDue(ctx context.Context, s *state) error {
	c := s.green.Spec.Checks
	due, ok := s.d.Deadlines[deadlineCheck]
	if len(c.Rules) == 0 || !ok || e.now().Before(due) {
		return nil
	}
	var results []RuleResult
	var green FleetMetrics
	var blue *FleetMetrics
	if s.isStack() {
		var err error
		if results, green, blue, err = e.stackResults(ctx, s); err != nil {
			return err
		}
	} else {
		m, err := e.opts.Traffic.Metrics(ctx, s.d.App, c.Interval.D())
		if err != nil {
			return err
		}
		green = m[s.det.Slot]
		var baseline bool
		blue, baseline = blueToCompare(s, c, m)
		results = EvaluateMetrics(c, green, blue)
		if baseline {
			markBaseline(results)
		}
	}
	for i, r := range c.Rules {
		switch {
		case r.Command != nil:
			results = append(results, e.commandCheck(ctx, s, i, r.Command))
		case r.Webhook != nil:
			results = append(results, e.webhookCheck(ctx, s, r.Webhook, green))
		case r.Prometheus != nil:
			results = append(results, e.prometheusCheck(ctx, s, c, r.Prometheus))
		}
	}
	v := Overall(results)
	s.det.LastResults = results
	switch v {
	case Fail:
		s.det.CheckFailures++
		s.det.Inconclusive = 0
		s.det.Progress.Checked = false
	case Pass:
		s.det.CheckFailures = 0
		s.det.Inconclusive = 0
		s.det.Progress.Checked = true
	case Inconclusive:
		s.det.Inconclusive++
	}
	stalled := v == Inconclusive && s.det.Inconclusive >= c.InconclusiveLimit && holdsOnSilence(s)
	if v != Inconclusive {
		s.det.Stalled = false
		delete(s.d.Deadlines, deadlineStalled)
	}
	s.d.Deadlines[deadlineCheck] = e.now().Add(c.Interval.D())
	fields := map[string]any{
		"verdict": string(v), "results": results, "failures": s.det.CheckFailures, "failure_limit": c.FailureLimit,
		"inconclusive": s.det.Inconclusive, "inconclusive_limit": c.InconclusiveLimit,
		"weight": s.det.Weight, "green_requests": green.Requests, "green_error_rate": green.ErrorRate(),
		"green_p99_seconds": green.P99.Seconds(),
	}
	if blue != nil {
		fields["blue_requests"] = blue.Requests
		fields["blue_error_rate"] = blue.ErrorRate()
		fields["blue_p99_seconds"] = blue.P99.Seconds()
	}
	msg := fmt.Sprintf("checks %s over %s: green %d requests, %.2f%% errors, p99 %s", v, c.Interval, green.Requests, 100*green.ErrorRate(), millis(green.P99))
	if v == Fail {
		msg += fmt.Sprintf(" (failure %d of %d: %s)", s.det.CheckFailures, c.FailureLimit, failedRules(results))
	}
	if v == Inconclusive {
		msg += fmt.Sprintf(" (%d of %d in a row: %s)", s.det.Inconclusive, c.InconclusiveLimit, inconclusiveRules(results))
	}
	if err := e.save(ctx, s, change{kind: "check", message: msg, fields: fields}); err != nil {
		return err
	}
	e.countCheck(s.d.App, v, results)
	if s.det.CheckFailures >= c.FailureLimit {
		return rollbackf("checks failed %d times in a row: %s", s.det.CheckFailures, failedRules(results))
	}
	if stalled && !s.det.Stalled {
		why := fmt.Sprintf("%d check evaluations in a row were inconclusive (%s)", s.det.Inconclusive, inconclusiveRules(results))
		if c.OnInconclusive == spec.InconclusiveRollback {
			return rollbackf("%s", why)
		}
		timeout := s.green.Spec.Strategy.ApprovalTimeout
		s.det.Stalled = true
		s.d.Deadlines[deadlineStalled] = e.now().Add(timeout.D())
		return e.save(ctx, s, change{kind: "checks.inconclusive", fields: map[string]any{"inconclusive": s.det.Inconclusive},
			message: fmt.Sprintf("%s: waiting for promote (go on) or abort; rolls back in %s otherwise", why, timeout)})
	}
	return nil
}

// holdsOnSilence says whether inconclusive evaluations hold the deployment
// back: not on an app's first deployment (nothing to compare with, nothing
// to go back to) nor on the fast path of a rollback.
func holdsOnSilence(s *state) bool {
	return s.blue != nil && !s.det.Fast
}

func inconclusiveRules(rs []RuleResult) string {
	var out []string
	for _, r := range rs {
		if r.Verdict == Inconclusive {
			out = append(out, r.name()+": "+r.Detail)
		}
	}
	return strings.Join(out, "; ")
}

func failedRules(rs []RuleResult) string {
	var out []string
	for _, r := range rs {
		if r.Verdict == Fail {
			out = append(out, r.name()+" "+r.Detail)
		}
	}
	return strings.Join(out, "; ")
}

// name is the rule as messages name it: with its service in a stack
// ("api: error_rate.max").
func (r RuleResult) name() string {
	if r.Service != "" {
		return r.Service + ": " + r.Rule
	}
	return r.Rule
}

func (e *Engine) commandCheck(ctx context.Context, s *state, i int, r *spec.CommandRule) RuleResult {
	res := RuleResult{Rule: "command", Verdict: Pass}
	dir, err := e.unpack(s.green)
	if err != nil {
		res.Verdict, res.Detail = Fail, err.Error()
		return res
	}
	env, err := e.commandEnv(ctx, s, "check")
	if err != nil {
		res.Verdict, res.Detail = Fail, err.Error()
		return res
	}
	out := e.execute(ctx, s, command{Run: r.Run, Dir: dir, Env: env, Timeout: r.Timeout.D()})
	res.Detail = fmt.Sprintf("%q exited %d in %s", r.Run, out.ExitCode, out.Took.Round(time.Millisecond))
	if out.Err != nil {
		res.Verdict = Fail
		res.Detail = out.Err.Error()
		if tail := strings.TrimSpace(out.Output); tail != "" {
			res.Detail += ": " + lastLine(tail)
		}
	}
	return res
}

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// webhookCheck POSTs the deployment and green's numbers to the URL; a 2xx
// answer in time passes.
func (e *Engine) webhookCheck(ctx context.Context, s *state, r *spec.WebhookRule, green FleetMetrics) RuleResult {
	res := RuleResult{Rule: "webhook", Verdict: Pass}
	body, _ := json.Marshal(map[string]any{
		"app": s.d.App, "deployment_id": s.d.ID, "revision": s.green.Generation, "phase": s.d.Phase,
		"weight": s.det.Weight, "green": map[string]any{
			"requests": green.Requests, "error_rate": green.ErrorRate(), "p99_seconds": green.P99.Seconds(),
		},
	})
	ctx, cancel := context.WithTimeout(ctx, r.Timeout.D())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(body))
	if err != nil {
		res.Verdict, res.Detail = Fail, err.Error()
		return res
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		res.Verdict, res.Detail = Fail, fmt.Sprintf("POST %s: %v", r.URL, err)
		return res
	}
	resp.Body.Close()
	res.Detail = fmt.Sprintf("POST %s answered %s", r.URL, resp.Status)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		res.Verdict = Fail
	}
	return res
}

// millis shows a latency for people: to the millisecond, and "under 1ms"
// rather than "0s".
func millis(d time.Duration) string {
	if d > 0 && d < time.Millisecond {
		return "under 1ms"
	}
	return d.Round(time.Millisecond).String()
}
