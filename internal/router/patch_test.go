package router

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAdminPatchRoutesChangesOnlyTheAppsItNames(t *testing.T) {
	r, admin, blue, green := adminRouter(t, "")
	c := &http.Client{}
	cart := newBackend(t, "cart")
	patch := fmt.Sprintf(`{"apps": {"cart": {"hosts": ["cart.test"], "fleets": {"blue": {"weight": 100, "targets": [%q]}}}}}`, cart.addr())
	code, body := call(t, "PATCH", admin+"/routes", "", patch)
	if code != 200 || !strings.Contains(body, `"generation": 2`) {
		t.Fatalf("PATCH /routes %d %s", code, body)
	}
	if _, got := getHost(t, c, prodURL(r), "cart.test"); got != "cart" {
		t.Fatalf("cart after PATCH: %s", got)
	}
	// shop answers on every host but cart's, as before.
	if _, got := getHost(t, c, prodURL(r), "shop.test"); got != "blue" {
		t.Fatalf("shop after PATCH: %s", got)
	}
	// Putting an app replaces it whole.
	patch = fmt.Sprintf(`{"apps": {"shop": {"fleets": {"blue": {"weight": 0, "targets": [%q]}, "green": {"weight": 100, "targets": [%q]}}, "test_fleet": "green"}}}`,
		blue.addr(), green.addr())
	if code, body := call(t, "PATCH", admin+"/routes", "", patch); code != 200 {
		t.Fatalf("PATCH shop: %d %s", code, body)
	}
	if _, got := getHost(t, c, prodURL(r), "shop.test"); got != "green" {
		t.Fatalf("shop after its PATCH: %s", got)
	}
	if _, got := getHost(t, c, prodURL(r), "cart.test"); got != "cart" {
		t.Fatalf("cart after shop's PATCH: %s", got)
	}
	// null takes an app out; an app that is not there is no error.
	if code, body := call(t, "PATCH", admin+"/routes", "", `{"apps": {"cart": null, "gone": null}}`); code != 200 {
		t.Fatalf("PATCH null: %d %s", code, body)
	}
	if cfg := r.Config(); len(cfg.Apps) != 1 || cfg.Apps["shop"] == nil {
		t.Fatalf("apps after removing cart: %v", cfg.Apps)
	}
	if r.Generation() != 4 {
		t.Fatalf("generation %d, want 4", r.Generation())
	}
}

// getHost fetches url with the Host header host and returns the body.
func getHost(t *testing.T, c *http.Client, url, host string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", url, host, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// A patch is checked with the running table whole, as a whole table is:
// a refusal names the app and changes nothing.
func TestAdminPatchRoutesIsCheckedWithTheRunningTable(t *testing.T) {
	r, admin, blue, _ := adminRouter(t, "")
	c := &http.Client{}
	testAddr := r.Config().Test
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	fleets := fmt.Sprintf(`"fleets": {"blue": {"weight": 100, "targets": [%q]}}`, blue.addr())
	for _, tc := range []struct {
		name, body, code string
		want             []string
	}{
		{"a host claimed twice", `{"apps": {"cart": {` + fleets + `}}}`, "invalid_table",
			[]string{`apps.shop: host \"*\" on ` + r.Config().Production + ` is claimed by app cart and by app shop`}},
		{"the test listener of another app", `{"apps": {"cart": {"hosts": ["cart.test"], "production": "` + testAddr + `", ` + fleets + `}}}`, "invalid_table",
			[]string{"apps.shop: " + testAddr + " cannot be the test listener of app shop: it is the production listener of app cart"}},
		{"an invalid app", `{"apps": {"cart": {"hosts": ["cart.test"], "fleets": {"blue": {"weight": 250, "targets": []}}}}}`, "invalid_table",
			[]string{"apps.cart.fleets.blue.weight: 250 is out of range 0..100"}},
		{"a listener that cannot be opened", `{"apps": {"cart": {"hosts": ["cart.test"], "production": "` + busy.Addr().String() + `", ` + fleets + `}}}`, "rejected",
			[]string{"opening listener " + busy.Addr().String()}},
		{"an unknown field", `{"apps": {"cart": {"bogus": 1}}}`, "invalid_table", []string{`unknown field \"bogus\"`}},
		{"no apps", `{}`, "invalid_table", []string{`\"apps\" is required`}},
		{"a whole table", `{"production": "127.0.0.1:1", "apps": {}}`, "invalid_table", []string{`unknown field \"production\"`}},
	} {
		code, body := call(t, "PATCH", admin+"/routes", "", tc.body)
		if code != 400 || !strings.Contains(body, `"code": "`+tc.code+`"`) {
			t.Errorf("%s: %d %s, want 400 %s", tc.name, code, body, tc.code)
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: %s\nwant it to say %s", tc.name, body, w)
			}
		}
	}
	if r.Generation() != 1 {
		t.Fatalf("refused patches changed the generation to %d", r.Generation())
	}
	if cfg := r.Config(); len(cfg.Apps) != 1 {
		t.Fatalf("refused patches changed the apps: %v", cfg.Apps)
	}
	if _, got := get(t, c, prodURL(r)); got != "blue" {
		t.Fatalf("after refused patches: %s", got)
	}
}

// Patches of different apps at once each go in, none lost to another.
func TestConcurrentPatchesKeepEachOther(t *testing.T) {
	r, _, blue, _ := adminRouter(t, "")
	h := r.AdminHandler()
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for i := range 20 {
		wg.Go(func() {
			body := fmt.Sprintf(`{"apps": {"a%d": {"hosts": ["a%d.test"], "fleets": {"blue": {"weight": 100, "targets": [%q]}}}}}`, i, i, blue.addr())
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("PATCH", "/routes", strings.NewReader(body)))
			if rec.Code != 200 {
				errs <- rec.Body.String()
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if cfg := r.Config(); len(cfg.Apps) != 21 {
		t.Fatalf("%d apps after 20 patches, want 21", len(cfg.Apps))
	}
	if r.Generation() != 21 {
		t.Fatalf("generation %d, want 21", r.Generation())
	}
}

// BenchmarkTableChange is what one app's change costs the router in a
// table of a thousand apps of ten targets each: the whole table pushed
// (PUT /routes: read, parsed, checked, compiled, swapped), or the app
// alone (PATCH /routes: the same check and compilation of the table it
// makes with the running one).
func BenchmarkTableChange(b *testing.B) {
	const apps, targets = 1000, 10
	tbl := &Config{Production: "127.0.0.1:1", Test: "127.0.0.1:2", Apps: map[string]*AppConfig{}}
	appOf := func(i, rev int) *AppConfig {
		var ts []string
		for k := range targets {
			ts = append(ts, fmt.Sprintf("127.0.0.1:%d", 20000+i*targets+k))
		}
		return &AppConfig{Hosts: []string{fmt.Sprintf("s%04d.scale.test", i)}, TestFleet: "green",
			Fleets: map[string]*FleetConfig{
				"blue":  {Weight: 100, Targets: ts, Revision: fmt.Sprint(rev), Role: "blue"},
				"green": {Weight: 0, Targets: ts[:1], Revision: fmt.Sprint(rev + 1), Role: "green"},
			}}
	}
	for i := range apps {
		tbl.Apps[fmt.Sprintf("s%04d", i)] = appOf(i, 1)
	}
	newRouter := func(b *testing.B) http.Handler {
		r := New(Options{})
		// The listeners are not opened: the cost is the table's.
		r.listeners[tbl.Production], r.listeners[tbl.Test] = &listener{addr: tbl.Production}, &listener{addr: tbl.Test}
		if _, err := r.Apply(tbl); err != nil {
			b.Fatal(err)
		}
		return r.AdminHandler()
	}
	do := func(b *testing.B, h http.Handler, method string, body []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/routes", strings.NewReader(string(body))))
		if rec.Code != 200 {
			b.Fatalf("%s /routes: %d %s", method, rec.Code, rec.Body)
		}
	}
	b.Run("put", func(b *testing.B) {
		h := newRouter(b)
		rev := 1
		for b.Loop() {
			rev++
			tbl.Apps["s0042"] = appOf(42, rev)
			js, _ := json.Marshal(tbl)
			do(b, h, "PUT", js)
		}
	})
	b.Run("patch", func(b *testing.B) {
		h := newRouter(b)
		rev := 1
		for b.Loop() {
			rev++
			js, _ := json.Marshal(Patch{Apps: map[string]*AppConfig{"s0042": appOf(42, rev)}})
			do(b, h, "PATCH", js)
		}
	})
}

// A patch keeps the other apps' compiled routes and targets (their health
// and counters), drops the targets the changed apps no longer name, and
// keeps those a changed app takes under a new name.
func TestPatchKeepsTheOtherAppsTargets(t *testing.T) {
	r, _, blue, green := adminRouter(t, "")
	cart := newBackend(t, "cart")
	app := func(addr, rev string) *AppConfig {
		return &AppConfig{Hosts: []string{"cart.test"}, Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{addr}, Revision: rev}}}
	}
	if _, err := r.ApplyPatch(&Patch{Apps: map[string]*AppConfig{"cart": app(cart.addr(), "1")}}); err != nil {
		t.Fatal(err)
	}
	shopBlue, shopApp := r.targets["shop/blue//"+blue.addr()], r.table.Load().apps["shop"]
	cartOld := r.targets["cart/blue/1/"+cart.addr()]
	if shopBlue == nil || cartOld == nil {
		t.Fatalf("targets %v", r.targets)
	}
	if _, err := r.ApplyPatch(&Patch{Apps: map[string]*AppConfig{"cart": app(green.addr(), "2")}}); err != nil {
		t.Fatal(err)
	}
	if r.targets["shop/blue//"+blue.addr()] != shopBlue || r.table.Load().apps["shop"] != shopApp {
		t.Fatal("patching cart rebuilt shop")
	}
	if r.targets["cart/blue/1/"+cart.addr()] != nil || !cartOld.retired.Load() {
		t.Fatal("cart's old target is still there")
	}
	if len(r.targets) != 3 {
		t.Fatalf("targets after the patch: %v", r.targets)
	}
	// cart renamed to cart.web: the same fleet, revision and address keep their target.
	cartNew := r.targets["cart/blue/2/"+green.addr()]
	if _, err := r.ApplyPatch(&Patch{Apps: map[string]*AppConfig{"cart": nil, "cart.web": app(green.addr(), "2")}}); err != nil {
		t.Fatal(err)
	}
	if got := r.targets["cart.web/blue/2/"+green.addr()]; got != cartNew || got.retired.Load() {
		t.Fatalf("the renamed app's target is %p (retired %v), want %p", got, got != nil && got.retired.Load(), cartNew)
	}
	if len(r.targets) != 3 {
		t.Fatalf("targets after the rename: %v", r.targets)
	}
}

// A drain fences its fleet by compiling its app alone: the other apps keep
// their compiled routes.
func TestDrainCompilesItsAppOnly(t *testing.T) {
	r, _, _, green := adminRouter(t, "")
	if _, err := r.ApplyPatch(&Patch{Apps: map[string]*AppConfig{"cart": {Hosts: []string{"cart.test"},
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{green.addr()}}}}}}); err != nil {
		t.Fatal(err)
	}
	cart := r.table.Load().apps["cart"]
	rep, err := r.Drain(t.Context(), DrainRequest{App: "shop", Fleet: "green", Timeout: Duration(time.Second)})
	if err != nil || !rep.Complete {
		t.Fatalf("drain: %+v %v", rep, err)
	}
	tbl := r.table.Load()
	if tbl.apps["cart"] != cart {
		t.Fatal("draining shop compiled cart again")
	}
	if !tbl.cfg.Apps["shop"].Fleets["green"].Fenced || tbl.cfg.Apps["cart"].Fleets["blue"].Fenced {
		t.Fatalf("after the drain: shop green fenced %v, cart blue fenced %v", tbl.cfg.Apps["shop"].Fleets["green"].Fenced, tbl.cfg.Apps["cart"].Fleets["blue"].Fenced)
	}
}
