package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"bluegreen/internal/server"
	"bluegreen/internal/testprom"
)

// promRule is two prometheus check rules on green's share of 5xx answers:
// as the router counts them (scraped from the server's GET
// /api/v1/metrics), and as the app itself counts them (hello's GET
// /metrics, its instances found through GET /api/v1/prometheus/targets).
const promRule = `strategy:
  steps:
    - { weight: 50 }
    - { weight: 100 }
checks:
  interval: 2s
  failure_limit: 2
  min_requests: 0
  inconclusive_limit: 20
  prometheus: %s
  rules:
    - prometheus:
        query: |
          sum(rate(bluegreen_router_fleet_requests_total{app="${app}",fleet="${fleet}",revision="${revision}",class="5xx"}[5s]))
            / sum(rate(bluegreen_router_fleet_requests_total{app="${app}",fleet="${fleet}",revision="${revision}"}[5s]))
        max: 0.1
        timeout: 2s
    - prometheus:
        query: |
          sum(rate(hello_requests_total{app="${app}",fleet="${fleet}",code="500"}[5s]))
            / sum(rate(hello_requests_total{app="${app}",fleet="${fleet}"}[5s]))
        max: 0.1
        timeout: 2s
`

// TestPrometheusRuleRollsBackABadGreen: a real Prometheus scrapes the
// server (its metrics and the router's, with a viewer's token); a
// prometheus rule on green's error ratio rolls back a green that fails
// half its requests, and lets a good green through with the same rule.
// The server's own metrics, as Prometheus sees them, count both.
func TestPrometheusRuleRollsBackABadGreen(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	info, err := server.ReadInfo(e.data)
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := e.api.CreateToken(ctx, "prometheus", "viewer")
	if err != nil {
		t.Fatal(err)
	}
	prom := testprom.Start(t, testprom.Options{Targets: []testprom.Target{
		{Job: "bluegreen", Addr: info.API, Path: "/api/v1/metrics", Token: viewer.Secret},
		{Job: "apps", Addr: info.API, Discovery: "/api/v1/prometheus/targets", Token: viewer.Secret},
	}})
	prom.WaitFor(t, 30*time.Second, `bluegreen_router_up{job="bluegreen"} == 1`)

	e.deployLive("v1", e.specFor(quick))
	l := startLoad(t, "http://"+e.prod+"/", 100)
	rule := fmt.Sprintf(promRule, prom.URL)

	// Green takes production traffic once Prometheus has found its
	// instances, so that the app's own rule has numbers from its start.
	gates := t.TempDir()
	gated := "hooks:\n  before_allow_traffic: [{ run: ./hooks/gate.sh, timeout: 1m }]\n"
	files := map[string]string{"hooks/gate.sh": gateHook(gates)}
	bad := e.deploy("v2", e.spec(specParts{env: `{ HELLO_ERROR_RATE: "0.5" }`, extra: quick + rule + gated}), files)
	prom.WaitFor(t, 60*time.Second, `count(up{job="apps",app="shop",revision="2"} == 1) == 2`)
	openGate(t, gates, "before_allow_traffic")
	d := e.waitEnd(bad.ID, 90*time.Second)
	if d.Outcome != "rolled_back" || !strings.Contains(d.Reason, "checks failed 2 times in a row: prometheus") ||
		!strings.Contains(d.Reason, "is above max 0.1") {
		t.Fatalf("bad green: %s (%s); want rolled back by the prometheus rule\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	t.Logf("bad green (slot %s): %s", detailsOf(t, d).Slot, d.Reason)
	var shifted, rolled time.Time
	evaluations := 0
	failed := map[string]int{} // by the metric the query reads
	for _, ev := range e.events(d.ID) {
		switch {
		case ev.Kind == "traffic" && shifted.IsZero():
			shifted = ev.Time
		case ev.Kind == "check":
			evaluations++
			results, _ := ev.Fields["results"].([]any)
			for _, r := range results {
				m, _ := r.(map[string]any)
				detail, _ := m["detail"].(string)
				for _, metric := range []string{"bluegreen_router_fleet_requests_total", "hello_requests_total"} {
					if m["verdict"] == "fail" && strings.Contains(detail, metric) {
						failed[metric]++
					}
				}
			}
		case ev.Kind == "phase" && strings.HasPrefix(ev.Message, "rolling back"):
			rolled = ev.Time
		}
	}
	if failed["bluegreen_router_fleet_requests_total"] == 0 || failed["hello_requests_total"] == 0 {
		t.Errorf("failed evaluations of each rule: %v; want both the router's and the app's to fail\n%s", failed, e.eventLog(d.ID))
	}
	t.Logf("bad green: rolled back %s after it got traffic, after %d check evaluations", rolled.Sub(shifted).Round(time.Millisecond), evaluations)

	good := e.deploy("v3", e.spec(specParts{extra: quick + rule + gated}), files) // the gate stays open
	d = e.waitEnd(good.ID, 90*time.Second)
	if d.Outcome != "succeeded" {
		t.Fatalf("good green: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	passed := 0
	for _, ev := range e.events(d.ID) {
		if ev.Kind != "check" {
			continue
		}
		results, _ := ev.Fields["results"].([]any)
		for _, r := range results {
			m, _ := r.(map[string]any)
			if m["rule"] == "prometheus" && m["verdict"] == "pass" {
				passed++
				if passed == 1 {
					t.Logf("good green: %v", m["detail"])
				}
			}
		}
	}
	if passed < 4 { // both rules, at 50 % and at 100 % to end the bake
		t.Errorf("the good green passed the prometheus rule %d times; want at least 2\n%s", passed, e.eventLog(d.ID))
	}
	recs := l.stop()
	t.Logf("load: %s", summary(recs))

	// What the server counted, as the real Prometheus scraped it.
	for _, q := range []string{
		`bluegreen_rollbacks_total{app="shop",cause="checks_failed"} == 1`,
		`bluegreen_deployments_total{app="shop",outcome="rolled_back"} == 1`,
		`bluegreen_deployments_total{app="shop",outcome="succeeded"} == 2`,
		`bluegreen_check_rule_results_total{app="shop",rule="prometheus",verdict="fail"} >= 2`,
		`bluegreen_check_rule_results_total{app="shop",rule="prometheus",verdict="pass"} >= 4`,
		// The app's own series carry the labels the discovery gave them.
		`sum(max_over_time(hello_requests_total{job="apps",app="shop",fleet="blue",revision="2",code="500"}[10m])) > 20`,
		`bluegreen_deployment_phase_duration_seconds_count{app="shop",phase="Shifting"} == 3`,
		`bluegreen_api_requests_total{route="/api/v1/apps/{app}/deployments",method="POST",code="201"} == 3`,
		// Green's fleet left the router with the rollback: its series ended then.
		`max_over_time(bluegreen_router_fleet_requests_total{app="shop",revision="2",class="5xx"}[10m]) > 50`,
	} {
		prom.WaitFor(t, 30*time.Second, q)
	}
}
