package routerproc

import (
	"context"
	"testing"
)

// TestClientMetrics reads the running router's Prometheus metrics over its
// admin socket: the per-fleet counters, labelled by slot and revision.
func TestClientMetrics(t *testing.T) {
	dir := stateDir(t)
	s, _ := start(t, dir, nil)
	ctx := context.Background()
	prod := freeAddr(t)
	cfg := oneApp(prod, backend(t, "blue", nil))
	cfg.Apps["shop"].Fleets["blue"].Revision = "7"
	if _, err := s.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		mustFetch(t, "http://"+prod+"/", "blue")
	}
	fams, err := s.Client().Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got float64
	found := false
	for _, f := range fams {
		if f.GetName() != "bluegreen_router_fleet_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["app"] == "shop" && l["fleet"] == "blue" && l["revision"] == "7" && l["class"] == "2xx" {
				got, found = m.GetCounter().GetValue(), true
			}
		}
	}
	if !found || got != 3 {
		t.Fatalf("bluegreen_router_fleet_requests_total{app=shop,fleet=blue,revision=7,class=2xx}: found %v, value %v; want 3", found, got)
	}
}
