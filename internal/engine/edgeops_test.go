package engine

import (
	"testing"
	"time"

	"bluegreen/internal/spec"
)

// The router's per-app settings of a spec reach the routing table.
func TestAppRouteCarriesEdgeSettings(t *testing.T) {
	s, err := spec.Parse([]byte("app: shop\nprocess:\n  command: [./shop]\nrouter:\n  access_log: true\n  max_body: 10MiB\n  timeout: 30s\nretire:\n  drain_spread: 10s\n"), "spec.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := s.Members()[0]
	cfg := appRoute(s, m, m, []fleetRoute{{slot: "a", weight: 100, targets: []string{"127.0.0.1:1"}, health: m.Health}}, "")
	if !cfg.AccessLog || cfg.MaxBody != 10<<20 || cfg.Timeout.D() != 30*time.Second || cfg.DrainSpread.D() != 10*time.Second {
		t.Errorf("route: access_log %v max_body %d timeout %s drain_spread %s", cfg.AccessLog, cfg.MaxBody, cfg.Timeout.D(), cfg.DrainSpread.D())
	}
	// Off by default.
	s, _ = spec.Parse([]byte("app: shop\nprocess:\n  command: [./shop]\n"), "spec.yaml")
	m = s.Members()[0]
	cfg = appRoute(s, m, m, []fleetRoute{{slot: "a", weight: 100, targets: []string{"127.0.0.1:1"}, health: m.Health}}, "")
	if cfg.AccessLog || cfg.MaxBody != 0 || cfg.Timeout != 0 || cfg.DrainSpread != 0 {
		t.Errorf("defaults: %+v", cfg)
	}
}
