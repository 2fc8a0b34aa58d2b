// Package metrics is the server's own Prometheus metrics: deployments by
// phase and outcome, time per phase, rollbacks by cause, check verdicts,
// hook durations and API requests, served together with the router's
// metrics at one address (see docs/api.md, "Metrics").
//
// Every label takes values from a bounded set: app names, phase and
// outcome names, rule kinds, hook events, rollback causes, route patterns
// and status codes. Free text (a rollback's reason, a request's path)
// never becomes a label. A nil *Metrics records nothing, so the engine and
// the API work without one (in tests, say).
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Active is one active deployment, for the gauge of deployments by phase.
type Active struct {
	App, Phase string
}

// Options are where the metrics read what they do not count themselves.
type Options struct {
	// Active lists the active deployments at scrape time (from the store,
	// so the gauge is right after a restart too). Nil: no such gauge.
	Active func(ctx context.Context) ([]Active, error)
	// Router reads the router's own metrics at scrape time. Nil: none.
	Router func(ctx context.Context) ([]*dto.MetricFamily, error)
	// ScrapeTimeout bounds what a scrape waits for Active and Router (5s
	// when zero).
	ScrapeTimeout time.Duration
}

// Metrics holds the server's collectors.
type Metrics struct {
	opts Options
	reg  *prometheus.Registry

	phaseSeconds *prometheus.HistogramVec
	ended        *prometheus.CounterVec
	rollbacks    *prometheus.CounterVec
	evaluations  *prometheus.CounterVec
	ruleResults  *prometheus.CounterVec
	hookSeconds  *prometheus.HistogramVec
	apiRequests  *prometheus.CounterVec
	apiSeconds   *prometheus.HistogramVec
	routerUp     prometheus.Gauge
	handler      http.Handler
}

// phaseBuckets span a fast phase (a second) to a day of waiting for approval.
var phaseBuckets = []float64{0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600, 24 * 3600}

// hookBuckets span a quick script to the default hook timeout (5m) and more.
var hookBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// New makes the server's collectors, registered with Go's and the process's.
func New(o Options) *Metrics {
	if o.ScrapeTimeout <= 0 {
		o.ScrapeTimeout = 5 * time.Second
	}
	m := &Metrics{
		opts: o,
		reg:  prometheus.NewRegistry(),
		phaseSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bluegreen_deployment_phase_duration_seconds",
			Help:    "Time deployments spent in a phase, observed when they leave it.",
			Buckets: phaseBuckets,
		}, []string{"app", "phase"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bluegreen_deployments_total",
			Help: "Deployments that ended, by outcome (succeeded, rolled_back, failed).",
		}, []string{"app", "outcome"}),
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bluegreen_rollbacks_total",
			Help: "Deployments that began rolling back, by cause (see docs/api.md for the causes).",
		}, []string{"app", "cause"}),
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bluegreen_check_evaluations_total",
			Help: "Check evaluations, by verdict (pass, fail, inconclusive).",
		}, []string{"app", "verdict"}),
		ruleResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bluegreen_check_rule_results_total",
			Help: "Verdicts of single check rules (error_rate.max, prometheus, ...).",
		}, []string{"app", "rule", "verdict"}),
		hookSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bluegreen_hook_duration_seconds",
			Help:    "Time hooks took, by lifecycle event and result (succeeded, failed, timed_out).",
			Buckets: hookBuckets,
		}, []string{"app", "event", "result"}),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bluegreen_api_requests_total",
			Help: "API requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		apiSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bluegreen_api_request_duration_seconds",
			Help:    "Time to answer API requests (streams last as long as they are followed), by route pattern and method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method"}),
		routerUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bluegreen_router_up",
			Help: "1 when the router's metrics could be read for this scrape, 0 otherwise.",
		}),
	}
	m.reg.MustRegister(m.phaseSeconds, m.ended, m.rollbacks, m.evaluations, m.ruleResults, m.hookSeconds,
		m.apiRequests, m.apiSeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if o.Active != nil {
		m.reg.MustRegister(activeCollector{m})
	}
	if o.Router != nil {
		m.reg.MustRegister(m.routerUp)
	}
	m.handler = promhttp.HandlerFor(m.gatherer(), promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return m
}

// PhaseLeft records that a deployment of app spent d in phase.
func (m *Metrics) PhaseLeft(app, phase string, d time.Duration) {
	if m == nil || d < 0 {
		return
	}
	m.phaseSeconds.WithLabelValues(app, phase).Observe(d.Seconds())
}

// DeploymentEnded counts a deployment of app that ended with outcome.
func (m *Metrics) DeploymentEnded(app, outcome string) {
	if m == nil {
		return
	}
	m.ended.WithLabelValues(app, outcome).Inc()
}

// RollbackBegan counts a rollback of app, by cause (one of Causes).
func (m *Metrics) RollbackBegan(app, cause string) {
	if m == nil {
		return
	}
	m.rollbacks.WithLabelValues(app, cause).Inc()
}

// RuleVerdict is one rule's name and verdict, as CheckEvaluated counts it.
type RuleVerdict struct{ Rule, Verdict string }

// CheckEvaluated counts an evaluation of app's checks and its rules'
// verdicts.
func (m *Metrics) CheckEvaluated(app, verdict string, rules []RuleVerdict) {
	if m == nil {
		return
	}
	m.evaluations.WithLabelValues(app, verdict).Inc()
	for _, r := range rules {
		m.ruleResults.WithLabelValues(app, ruleLabel(r.Rule), r.Verdict).Inc()
	}
}

// ruleLabel keeps a rule's name a bounded label: the names the engine gives
// (error_rate.max, latency_p99.max_vs_blue, command, prometheus, ...) pass,
// anything longer or of other characters is cut to its first word.
func ruleLabel(rule string) string {
	end := len(rule)
	for i, c := range rule {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			end = i
			break
		}
	}
	if end == 0 || end > 48 {
		return "other"
	}
	return rule[:end]
}

// Hook results.
const (
	HookSucceeded = "succeeded"
	HookFailed    = "failed"
	HookTimedOut  = "timed_out"
)

// HookRan records a hook of app's lifecycle event that took d.
func (m *Metrics) HookRan(app, event, result string, d time.Duration) {
	if m == nil {
		return
	}
	m.hookSeconds.WithLabelValues(app, event, result).Observe(d.Seconds())
}

// APIRequest records an API request: pattern is the route's pattern as
// the mux matched it ("GET /api/v1/apps/{app}"), never the raw path.
func (m *Metrics) APIRequest(pattern, method string, code int, d time.Duration) {
	if m == nil {
		return
	}
	route := pattern
	if _, path, ok := strings.Cut(pattern, " "); ok {
		route = path
	}
	if route == "" {
		route = "none"
	}
	if !knownMethod(method) {
		method = "other"
	}
	m.apiRequests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.apiSeconds.WithLabelValues(route, method).Observe(d.Seconds())
}

func knownMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return true
	}
	return false
}

// Handler serves the server's metrics and the router's, in the format the
// scraper asks for.
func (m *Metrics) Handler() http.Handler { return m.handler }

// gatherer merges the server's registry with the router's metrics.
func (m *Metrics) gatherer() prometheus.Gatherer {
	if m.opts.Router == nil {
		return m.reg
	}
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		ctx, cancel := context.WithTimeout(context.Background(), m.opts.ScrapeTimeout)
		defer cancel()
		router, err := m.opts.Router(ctx)
		if err != nil {
			// The router restarting is not the server's failure: its
			// metrics are left out of this scrape and bluegreen_router_up
			// says so.
			m.routerUp.Set(0)
			return m.reg.Gather()
		}
		m.routerUp.Set(1)
		router = withoutRuntime(router)
		return prometheus.Gatherers{m.reg, prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return router, nil })}.Gather()
	})
}

// withoutRuntime drops the Go and process metrics a router may expose:
// the server's own have the same names.
func withoutRuntime(fams []*dto.MetricFamily) []*dto.MetricFamily {
	out := fams[:0:0]
	for _, f := range fams {
		if n := f.GetName(); strings.HasPrefix(n, "go_") || strings.HasPrefix(n, "process_") || strings.HasPrefix(n, "promhttp_") {
			continue
		}
		out = append(out, f)
	}
	return out
}

// activeCollector reports the active deployments by app and phase at
// scrape time.
type activeCollector struct{ m *Metrics }

var descActive = prometheus.NewDesc("bluegreen_deployments_active",
	"Active deployments, by app and phase (1 while the app's deployment is in that phase).", []string{"app", "phase"}, nil)

func (c activeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descActive }

func (c activeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.m.opts.ScrapeTimeout)
	defer cancel()
	ds, err := c.m.opts.Active(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descActive, err)
		return
	}
	n := map[Active]int{}
	for _, d := range ds {
		n[d]++
	}
	for d, k := range n {
		ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(k), d.App, d.Phase)
	}
}
