package routerproc

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"bluegreen/internal/router"
)

// hostApp is app on host, its blue fleet on target.
func hostApp(host, target string) *router.AppConfig {
	return &router.AppConfig{Hosts: []string{host},
		Fleets: map[string]*router.FleetConfig{"blue": {Weight: 100, Targets: []string{target}}}}
}

func TestUpdateSendsTheChangedAppsAndSavesTheWholeTable(t *testing.T) {
	dir := stateDir(t)
	s, _ := start(t, dir, nil)
	ctx := context.Background()
	prod := freeAddr(t)
	one, two := backend(t, "one", nil), backend(t, "two", nil)
	tbl := router.Config{Production: prod, Apps: map[string]*router.AppConfig{
		"shop": hostApp("shop.test", one), "cart": hostApp("cart.test", one)}}

	// The first push of a supervisor is whole, whatever changed says.
	if gen, err := s.Update(ctx, tbl, nil); err != nil || gen != 2 {
		t.Fatalf("first update: %d %v", gen, err)
	}
	mustFetchHost(t, prod, "cart.test", "one")

	// Then only the apps named go: cart's change, left unnamed, stays
	// out of the router and of the file, shop's goes into both, and a new
	// app is added.
	next := tbl
	next.Apps = maps.Clone(tbl.Apps)
	next.Apps["shop"] = hostApp("shop.test", two)
	next.Apps["cart"] = hostApp("cart.test", two)
	next.Apps["blog"] = hostApp("blog.test", two)
	if gen, err := s.Update(ctx, next, []string{"shop", "blog"}); err != nil || gen != 3 {
		t.Fatalf("update: %d %v", gen, err)
	}
	mustFetchHost(t, prod, "shop.test", "two")
	mustFetchHost(t, prod, "blog.test", "two")
	mustFetchHost(t, prod, "cart.test", "one")
	saved, err := router.LoadFile(filepath.Join(dir, RoutesFile))
	if err != nil || len(saved.Apps) != 3 || saved.Apps["shop"].Fleets["blue"].Targets[0] != two ||
		saved.Apps["cart"].Fleets["blue"].Targets[0] != one || saved.Production != prod || saved.Admin != s.Admin() {
		t.Fatalf("routes.yaml after an update: %+v %v", saved, err)
	}
	running, _, err := s.Client().Routes(ctx)
	if err != nil || len(running.Apps) != 3 || running.Apps["cart"].Fleets["blue"].Targets[0] != one {
		t.Fatalf("the router's table: %+v %v", running, err)
	}

	// An app missing from the table and named is removed.
	delete(next.Apps, "blog")
	if _, err := s.Update(ctx, next, []string{"blog"}); err != nil {
		t.Fatal(err)
	}
	if saved, err := router.LoadFile(filepath.Join(dir, RoutesFile)); err != nil || len(saved.Apps) != 2 || saved.Apps["blog"] != nil {
		t.Fatalf("routes.yaml after removing blog: %+v %v", saved, err)
	}
	if code, _, _ := fetchHost(prod, "blog.test"); code != 404 {
		t.Fatalf("blog after its removal: %d", code)
	}

	// Other settings go as a whole table.
	next.RequestIDHeader = "X-Trace"
	if _, err := s.Update(ctx, next, nil); err != nil {
		t.Fatal(err)
	}
	if running, _, err := s.Client().Routes(ctx); err != nil || running.RequestIDHeader != "X-Trace" || running.Apps["cart"].Fleets["blue"].Targets[0] != two {
		t.Fatalf("after new settings: %+v %v", running, err)
	}
}

// A change the router refuses names the app, and changes neither the router
// nor the route file; the next change of another app still goes.
func TestUpdateRefusedLeavesRouterAndFile(t *testing.T) {
	dir := stateDir(t)
	s, _ := start(t, dir, nil)
	ctx := context.Background()
	prod := freeAddr(t)
	one := backend(t, "one", nil)
	tbl := router.Config{Production: prod, Apps: map[string]*router.AppConfig{"shop": hostApp("shop.test", one)}}
	if _, err := s.Update(ctx, tbl, nil); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, RoutesFile)
	before, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	gen, _ := s.Client().Health(ctx)

	busy := freeAddrHeld(t)
	for what, c := range map[string]struct {
		app  *router.AppConfig
		want string
	}{
		"a host claimed twice": {hostApp("shop.test", one), `host "shop.test" on ` + prod + ` is claimed by app cart and by app shop`},
		"a busy listener": {&router.AppConfig{Hosts: []string{"cart.test"}, Production: busy,
			Fleets: map[string]*router.FleetConfig{"blue": {Weight: 100, Targets: []string{one}}}}, "opening listener " + busy},
	} {
		bad := tbl
		bad.Apps = map[string]*router.AppConfig{"shop": tbl.Apps["shop"], "cart": c.app}
		_, err := s.Update(ctx, bad, []string{"cart"})
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("%s: %v, want a refusal saying %s", what, err, c.want)
		}
		if after, _ := os.ReadFile(file); string(after) != string(before) {
			t.Fatalf("%s: routes.yaml changed:\n%s", what, after)
		}
		if g, _ := s.Client().Health(ctx); g != gen {
			t.Fatalf("%s: generation %d, want %d", what, g, gen)
		}
	}
	good := tbl
	good.Apps = map[string]*router.AppConfig{"shop": tbl.Apps["shop"], "blog": hostApp("blog.test", one)}
	if _, err := s.Update(ctx, good, []string{"cart", "blog"}); err != nil {
		t.Fatal(err)
	}
	mustFetchHost(t, prod, "blog.test", "one")
}

func fetchHost(addr, host string) (int, string, error) {
	return fetchWithHost("http://"+addr+"/", host)
}

func mustFetchHost(t *testing.T, addr, host, want string) {
	t.Helper()
	code, body, err := fetchHost(addr, host)
	if err != nil || code != 200 || body != want {
		t.Fatalf("GET http://%s/ (Host %s): %d %q %v, want 200 %q", addr, host, code, body, err, want)
	}
}

// fetchWithHost GETs url with the Host header host, on a fresh connection.
func fetchWithHost(url, host string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// A router started again from the route file after a crash runs the whole
// table the updates made, and takes the next update.
func TestUpdateAfterTheRouterRestarted(t *testing.T) {
	dir := stateDir(t)
	s, logs := start(t, dir, func(o *Options) { o.WatchInterval = 50 * time.Millisecond })
	ctx := context.Background()
	prod := freeAddr(t)
	one, two := backend(t, "one", nil), backend(t, "two", nil)
	tbl := router.Config{Production: prod, Apps: map[string]*router.AppConfig{"shop": hostApp("shop.test", one)}}
	if _, err := s.Update(ctx, tbl, nil); err != nil {
		t.Fatal(err)
	}
	tbl.Apps = map[string]*router.AppConfig{"shop": tbl.Apps["shop"], "cart": hostApp("cart.test", one)}
	if _, err := s.Update(ctx, tbl, []string{"cart"}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(s.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Restarted():
	case <-time.After(30 * time.Second):
		t.Fatalf("no restart after the router was killed\n%s", logs)
	}
	mustFetchHost(t, prod, "shop.test", "one")
	mustFetchHost(t, prod, "cart.test", "one")
	tbl.Apps = map[string]*router.AppConfig{"shop": hostApp("shop.test", two), "cart": tbl.Apps["cart"]}
	if _, err := s.Update(ctx, tbl, []string{"shop"}); err != nil {
		t.Fatal(err)
	}
	mustFetchHost(t, prod, "shop.test", "two")
	mustFetchHost(t, prod, "cart.test", "one")
}
