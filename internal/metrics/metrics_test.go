package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %d\n%s", resp.StatusCode, b)
	}
	return string(b)
}

func contains(t *testing.T, text string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("the scrape lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", text)
	}
}

// routerFamilies is what a router's registry gathers, with a Go metric
// of its own that the server's must win over.
func routerFamilies(t *testing.T) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bluegreen_router_fleet_requests_total", Help: "h"}, []string{"app", "fleet", "class"})
	c.WithLabelValues("shop", "green", "5xx").Add(7)
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "go_goroutines", Help: "the router's"})
	g.Set(123456)
	reg.MustRegister(c, g)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

func TestScrapeMergesTheRouterAndCountsWhatHappened(t *testing.T) {
	fams := routerFamilies(t)
	m := New(Options{
		Active: func(context.Context) ([]Active, error) {
			return []Active{{"shop", "Shifting"}, {"cart", "AwaitingApproval"}}, nil
		},
		Router: func(context.Context) ([]*dto.MetricFamily, error) { return fams, nil },
	})
	m.PhaseLeft("shop", "Validating", 3*time.Second)
	m.DeploymentEnded("shop", "rolled_back")
	m.RollbackBegan("shop", "checks_failed")
	m.CheckEvaluated("shop", "fail", []RuleVerdict{{"error_rate.max", "fail"}, {"prometheus", "pass"}, {"weird rule name!", "pass"}})
	m.HookRan("shop", "validate_service", HookTimedOut, 2*time.Second)
	m.APIRequest("GET /api/v1/apps/{app}", "GET", 200, time.Millisecond)
	m.APIRequest("/", "BREW", 404, time.Millisecond)
	text := scrape(t, m)
	contains(t, text,
		`bluegreen_router_fleet_requests_total{app="shop",class="5xx",fleet="green"} 7`,
		`bluegreen_router_up 1`,
		`bluegreen_deployments_active{app="shop",phase="Shifting"} 1`,
		`bluegreen_deployments_active{app="cart",phase="AwaitingApproval"} 1`,
		`bluegreen_deployment_phase_duration_seconds_bucket{app="shop",phase="Validating",le="5"} 1`,
		`bluegreen_deployment_phase_duration_seconds_sum{app="shop",phase="Validating"} 3`,
		`bluegreen_deployments_total{app="shop",outcome="rolled_back"} 1`,
		`bluegreen_rollbacks_total{app="shop",cause="checks_failed"} 1`,
		`bluegreen_check_evaluations_total{app="shop",verdict="fail"} 1`,
		`bluegreen_check_rule_results_total{app="shop",rule="error_rate.max",verdict="fail"} 1`,
		`bluegreen_check_rule_results_total{app="shop",rule="prometheus",verdict="pass"} 1`,
		`bluegreen_check_rule_results_total{app="shop",rule="weird",verdict="pass"} 1`,
		`bluegreen_hook_duration_seconds_count{app="shop",event="validate_service",result="timed_out"} 1`,
		`bluegreen_api_requests_total{code="200",method="GET",route="/api/v1/apps/{app}"} 1`,
		`bluegreen_api_requests_total{code="404",method="other",route="/"} 1`,
		"process_cpu_seconds_total",
	)
	if strings.Contains(text, "123456") {
		t.Errorf("the router's go_goroutines was served beside the server's")
	}
}

func TestScrapeWithoutTheRouter(t *testing.T) {
	m := New(Options{Router: func(context.Context) ([]*dto.MetricFamily, error) {
		return nil, errors.New("dial unix router/admin.sock: connection refused")
	}})
	text := scrape(t, m)
	contains(t, text, "bluegreen_router_up 0", "go_goroutines")
	if strings.Contains(text, "bluegreen_router_fleet") {
		t.Errorf("router metrics without a router:\n%s", text)
	}
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	m.PhaseLeft("a", "Pending", time.Second)
	m.DeploymentEnded("a", "succeeded")
	m.RollbackBegan("a", "other")
	m.CheckEvaluated("a", "pass", nil)
	m.HookRan("a", "before_install", HookSucceeded, time.Second)
	m.APIRequest("GET /api/v1/apps", "GET", 200, time.Second)
}

func TestRuleLabel(t *testing.T) {
	for in, want := range map[string]string{
		"error_rate.max": "error_rate.max", "latency_p99.max_vs_blue": "latency_p99.max_vs_blue", "prometheus": "prometheus",
		"prometheus[2]": "prometheus", "": "other", "Judge": "other", strings.Repeat("a", 60): "other",
	} {
		if got := ruleLabel(in); got != want {
			t.Errorf("ruleLabel(%q) = %q, want %q", in, got, want)
		}
	}
}
