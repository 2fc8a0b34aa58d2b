package spec

import (
	"strings"
	"testing"
)

func TestExpandQuery(t *testing.T) {
	v := QueryVars{App: "shop", Fleet: "blue", Revision: "7", Interval: "10s"}
	for q, want := range map[string]string{
		`sum(rate(x{app="${app}",fleet="${fleet}",revision="${revision}"}[${interval}]))`: `sum(rate(x{app="shop",fleet="blue",revision="7"}[10s]))`,
		`vector(1)`:          `vector(1)`,
		`x{a="$$1", b="$b"}`: `x{a="$1", b="$b"}`,
		`${app}${app}`:       `shopshop`,
	} {
		got, err := ExpandQuery(q, v)
		if err != nil || got != want {
			t.Errorf("ExpandQuery(%s) = %q, %v; want %q", q, got, err, want)
		}
	}
	for q, want := range map[string]string{
		`x{app="${APP}"}`: "unknown placeholder ${APP}; a query may use ${app}, ${fleet}, ${revision}, ${interval}",
		`x{app="${app"}`:  `bad variable name`,
		`x[${interval`:    "unclosed ${",
	} {
		if _, err := ExpandQuery(q, v); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ExpandQuery(%s): %v; want an error with %q", q, err, want)
		}
	}
}

func TestPrometheusRuleParses(t *testing.T) {
	s, err := Parse([]byte(base+`checks:
  prometheus: http://127.0.0.1:9090/prom
  rules:
    - prometheus:
        query: 'sum(rate(bluegreen_router_fleet_requests_total{app="${app}",fleet="${fleet}",class="5xx"}[${interval}]))'
        max: 0.05
    - prometheus: { query: 'vector(1)', min: 0.5, max: 2, timeout: 2s }
`), FileName)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Checks
	if c.Prometheus != "http://127.0.0.1:9090/prom" || len(c.Rules) != 2 {
		t.Fatalf("checks: %+v", c)
	}
	r0, r1 := c.Rules[0].Prometheus, c.Rules[1].Prometheus
	if r0.Timeout.D() != DefaultPrometheusTimeout || *r0.Max != 0.05 || r0.Min != nil {
		t.Errorf("first rule: %+v", r0)
	}
	if r1.Timeout.D().String() != "2s" || *r1.Min != 0.5 || *r1.Max != 2 {
		t.Errorf("second rule: %+v", r1)
	}
}
