package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"bluegreen/internal/spec"
)

// prometheusCheck asks the Prometheus the spec names (else the server's)
// for the rule's query, with the placeholders filled for green, and judges
// its value. Whatever keeps the query from giving a value (no Prometheus,
// an error, a timeout, no data) is inconclusive with its reason: silence
// is not a pass, and a Prometheus that is down is not green's fault.
func (e *Engine) prometheusCheck(ctx context.Context, s *state, c spec.Checks, r *spec.PrometheusRule) RuleResult {
	base := c.Prometheus
	if base == "" {
		base = e.opts.Prometheus
	}
	q, err := spec.ExpandQuery(r.Query, spec.QueryVars{
		App: s.d.App, Fleet: s.det.Slot, Revision: strconv.FormatInt(s.green.Generation, 10), Interval: promDuration(c.Interval.D()),
	})
	if err != nil {
		return RuleResult{Rule: "prometheus", Verdict: Inconclusive, Detail: err.Error()}
	}
	if base == "" {
		return RuleResult{Rule: "prometheus", Verdict: Inconclusive,
			Detail: "no Prometheus to ask: set checks.prometheus in the spec, or start the server with --prometheus URL"}
	}
	v, warnings, err := queryPrometheus(ctx, base, q, r.Timeout.D(), e.now())
	return judgePrometheus(r, q, v, warnings, err)
}

// promDuration writes d as a PromQL range: whole seconds, else milliseconds.
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", max(d/time.Millisecond, 1))
}

// queryPrometheus runs an instant query at the time at through the HTTP
// API (POST BASE/api/v1/query), within timeout: the request ends then, and
// Prometheus is told to stop evaluating then too. The standard library
// does the talking; the result decodes into Prometheus's own model types.
func queryPrometheus(ctx context.Context, base, query string, timeout time.Duration, at time.Time) (model.Value, []string, error) {
	shown := redactURL(base)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	form := url.Values{
		"query":   {query},
		"time":    {strconv.FormatFloat(float64(at.UnixMilli())/1e3, 'f', -1, 64)},
		"timeout": {promDuration(timeout)},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/api/v1/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, nil, fmt.Errorf("Prometheus %s: %w", shown, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("no answer from Prometheus %s within %s (timeout)", shown, timeout)
		}
		return nil, nil, fmt.Errorf("asking Prometheus %s: %s", shown, scrubURLs(err.Error()))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPromAnswer+1))
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, nil, fmt.Errorf("no answer from Prometheus %s within %s (timeout)", shown, timeout)
	case err != nil:
		return nil, nil, fmt.Errorf("reading the answer of Prometheus %s: %w", shown, err)
	case len(body) > maxPromAnswer:
		return nil, nil, fmt.Errorf("the answer of Prometheus %s is over %d bytes; make the query return fewer series", shown, maxPromAnswer)
	}
	var ans struct {
		Status    string          `json:"status"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Warnings  []string        `json:"warnings"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil || ans.Status == "" {
		return nil, nil, fmt.Errorf("Prometheus %s answered %s, not the Prometheus API: %s", shown, resp.Status, clipQuery(string(body)))
	}
	switch {
	case ans.Status != "success" && ans.ErrorType == "timeout":
		return nil, ans.Warnings, fmt.Errorf("Prometheus %s gave up on the query within %s: %s", shown, timeout, ans.Error)
	case ans.Status != "success":
		return nil, ans.Warnings, fmt.Errorf("Prometheus %s refused the query (%s): %s", shown, ans.ErrorType, ans.Error)
	}
	v, err := decodeResult(ans.Data)
	if err != nil {
		return nil, ans.Warnings, fmt.Errorf("Prometheus %s: %w", shown, err)
	}
	return v, ans.Warnings, nil
}

// maxPromAnswer bounds an answer read: a query that returns thousands of
// series is a mistake in a check rule, not something to judge.
const maxPromAnswer = 4 << 20

// decodeResult decodes the data of a query's answer by its result type.
func decodeResult(data json.RawMessage) (model.Value, error) {
	var d struct {
		Type   model.ValueType `json:"resultType"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("decoding the result: %w", err)
	}
	var v model.Value
	switch d.Type {
	case model.ValVector:
		v = &model.Vector{}
	case model.ValScalar:
		v = &model.Scalar{}
	case model.ValMatrix:
		v = &model.Matrix{}
	case model.ValString:
		v = &model.String{}
	default:
		return nil, fmt.Errorf("the result has an unknown type %q", d.Type)
	}
	if err := json.Unmarshal(d.Result, v); err != nil {
		return nil, fmt.Errorf("decoding the %s result: %w", d.Type, err)
	}
	switch x := v.(type) {
	case *model.Vector:
		return *x, nil
	case *model.Matrix:
		return *x, nil
	}
	return v, nil
}

// redactURL hides a password written in a Prometheus's URL.
func redactURL(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return u
	}
	return pu.Redacted()
}

// scrubURLs hides passwords in the URLs an error of net/http quotes.
func scrubURLs(s string) string {
	for _, f := range strings.Fields(s) {
		f = strings.Trim(f, `"':,`)
		if strings.Contains(f, "://") && strings.Contains(f, "@") {
			s = strings.ReplaceAll(s, f, redactURL(f))
		}
	}
	return s
}

// judgePrometheus judges a query's result against the rule's bounds. Every
// sample of a vector is held to them: one out of bounds fails the rule. An
// empty result, NaN, a range vector or a string is inconclusive, and so is
// an error, with its reason.
func judgePrometheus(r *spec.PrometheusRule, query string, v model.Value, warnings []string, err error) RuleResult {
	res := RuleResult{Rule: "prometheus", Verdict: Inconclusive}
	shown := clipQuery(query)
	if err != nil {
		res.Detail = fmt.Sprintf("%s: %v", shown, err)
		return res
	}
	type sample struct {
		value  float64
		labels string
	}
	var samples []sample
	switch val := v.(type) {
	case model.Vector:
		for _, s := range val {
			samples = append(samples, sample{float64(s.Value), s.Metric.String()})
		}
	case *model.Scalar:
		samples = append(samples, sample{float64(val.Value), ""})
	case model.Matrix:
		res.Detail = fmt.Sprintf("%s: the query returns a range vector; make it an instant one, e.g. with rate(...[1m]) or avg_over_time(...[1m])", shown)
		return res
	default:
		res.Detail = fmt.Sprintf("%s: the query returns a %s, not a number", shown, typeName(v))
		return res
	}
	if len(samples) == 0 {
		res.Detail = fmt.Sprintf("%s: no data (the result is empty)", shown)
		return withWarnings(res, warnings)
	}
	// The sample to report: the first out of bounds, else the first NaN,
	// else the one nearest a bound.
	var bad, nan, near *sample
	for i := range samples {
		s := &samples[i]
		switch {
		case math.IsNaN(s.value):
			if nan == nil {
				nan = s
			}
		case r.Max != nil && s.value > *r.Max || r.Min != nil && s.value < *r.Min:
			if bad == nil {
				bad = s
			}
		case near == nil || r.Max != nil && s.value > near.value || r.Max == nil && s.value < near.value:
			near = s
		}
	}
	of := func(s *sample) string {
		if len(samples) == 1 || s.labels == "" {
			return ""
		}
		return " for " + s.labels
	}
	switch {
	case bad != nil:
		res.Verdict, res.Green = Fail, bad.value
		if r.Max != nil && bad.value > *r.Max {
			res.Limit = *r.Max
			res.Detail = fmt.Sprintf("%.4g is above max %.4g%s (%s)", bad.value, *r.Max, of(bad), shown)
		} else {
			res.Limit = *r.Min
			res.Detail = fmt.Sprintf("%.4g is below min %.4g%s (%s)", bad.value, *r.Min, of(bad), shown)
		}
	case nan != nil:
		res.Detail = fmt.Sprintf("%s: the value is NaN%s (no data: 0/0, say, when nothing was counted)", shown, of(nan))
	default:
		res.Verdict, res.Green = Pass, near.value
		res.Detail = fmt.Sprintf("%.4g is within %s%s (%s)", near.value, bounds(r), of(near), shown)
		if r.Max != nil {
			res.Limit = *r.Max
		} else {
			res.Limit = *r.Min
		}
	}
	if len(samples) > 1 {
		res.Detail += fmt.Sprintf("; %d series", len(samples))
	}
	return withWarnings(res, warnings)
}

func bounds(r *spec.PrometheusRule) string {
	switch {
	case r.Min != nil && r.Max != nil:
		return fmt.Sprintf("[%.4g, %.4g]", *r.Min, *r.Max)
	case r.Max != nil:
		return fmt.Sprintf("max %.4g", *r.Max)
	default:
		return fmt.Sprintf("min %.4g", *r.Min)
	}
}

func withWarnings(res RuleResult, warnings []string) RuleResult {
	if len(warnings) > 0 {
		res.Detail += "; Prometheus warns: " + strings.Join(warnings, "; ")
	}
	return res
}

func typeName(v model.Value) string {
	if v == nil {
		return "nothing"
	}
	return v.Type().String()
}

// clipQuery keeps a query short enough for an event line.
func clipQuery(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	const limit = 120
	if len(q) > limit {
		cut := limit
		for cut > 0 && q[cut]&0xC0 == 0x80 { // a rune boundary
			cut--
		}
		q = q[:cut] + "…"
	}
	return q
}
