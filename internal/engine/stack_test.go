package engine

import (
	"reflect"
	"testing"
	"time"

	"bluegreen/internal/spec"
	"bluegreen/internal/store"
)

const stackYAML = `app: shop
services:
  web:
    process: { command: [./web] }
    router: {}
    depends_on: [api]
  api:
    process: { command: [./api], instances: 2 }
    router: { path: /api }
    depends_on: [db]
  db:
    process: { command: [./db] }
`

const singleYAML = "app: shop\nprocess: { command: [./shop], instances: 3 }\n"

func parsed(t *testing.T, y string) *spec.Spec {
	t.Helper()
	s, err := spec.Parse([]byte(y), spec.FileName)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCounterpart(t *testing.T) {
	stack, single := parsed(t, stackYAML), parsed(t, singleYAML)
	for _, tc := range []struct {
		m           string
		from, to    *spec.Spec
		want        string
		wantPresent bool
	}{
		{"api", stack, stack, "api", true},
		{"", single, single, "", true},
		{"", single, stack, "web", true},  // the single service is the stack's root
		{"web", stack, single, "", true},  // and back
		{"api", stack, single, "", false}, // no counterpart in an app of one service
		{"cache", stack, stack, "cache", false},
	} {
		got, ok := counterpart(tc.m, tc.from, tc.to)
		if got != tc.want || ok != tc.wantPresent {
			t.Errorf("counterpart(%q) = %q, %v; want %q, %v", tc.m, got, ok, tc.want, tc.wantPresent)
		}
	}
}

func TestDrainOrder(t *testing.T) {
	rev := &revision{Revision: store.Revision{App: "shop", Generation: 2}, Spec: parsed(t, stackYAML)}
	got := drainOrder("shop", fleet{rev: rev, slot: SlotBlue}, rev.Spec)
	// Front ends first; each public route before the service's own address.
	want := []string{"shop.web", "shop.web.blue", "shop.api", "shop.api.blue", "shop.db.blue"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("drainOrder = %v, want %v", got, want)
	}
	single := &revision{Revision: store.Revision{App: "shop", Generation: 1}, Spec: parsed(t, singleYAML)}
	if got := drainOrder("shop", fleet{rev: single, slot: SlotGreen}, single.Spec); !reflect.DeepEqual(got, []string{"shop"}) {
		t.Errorf("drainOrder of an app of one service = %v", got)
	}
}

func TestMemberMetrics(t *testing.T) {
	rev := &revision{Revision: store.Revision{App: "shop", Generation: 2}, Spec: parsed(t, stackYAML)}
	f := fleet{rev: rev, slot: SlotGreen, counts: serviceCounts(rev.Spec)}
	all := map[string]map[string]FleetMetrics{
		// api answers browsers under /api and web's calls at its address.
		"shop.api":       {SlotGreen: {Weight: 10, Requests: 100, Errors: 1, P99: 10 * time.Millisecond}, SlotBlue: {Weight: 90, Requests: 900}},
		"shop.api.green": {SlotGreen: {Weight: 100, Requests: 300, Errors: 3, P99: 30 * time.Millisecond}},
		"shop.api.blue":  {SlotBlue: {Weight: 100, Requests: 2700}},
		"shop.api.live":  {SlotBlue: {Weight: 100, Requests: 50}},
	}
	api, _ := rev.Spec.Member("api")
	m, ok := memberMetrics(all, "shop", f, api, rev.Spec)
	if !ok || m.Requests != 400 || m.Errors != 4 || m.Weight != 10 || m.P99 != 25*time.Millisecond {
		t.Errorf("green's api = %+v, %v; want 400 requests, 4 errors, weight 10, p99 25ms (weighted by requests)", m, ok)
	}
	f.slot = SlotBlue
	if m, _ := memberMetrics(all, "shop", f, api, rev.Spec); m.Requests != 3650 {
		t.Errorf("blue's api = %d requests, want 3650 (its route, its address and the live address)", m.Requests)
	}
	db, _ := rev.Spec.Member("db")
	if _, ok := memberMetrics(all, "shop", f, db, rev.Spec); ok {
		t.Error("db has metrics the router never had")
	}
	if n := f.total(); n != 4 {
		t.Errorf("the fleet has %d instances, want 4", n)
	}
}
