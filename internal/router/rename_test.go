package router

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"bluegreen/internal/testwait"
)

// renamedApp is cfg's app "shop" under another router app name, as when an
// app of one service becomes a stack's public route ("shop.web"), or back.
func renamedApp(cfg *Config, from, to string) *Config {
	c := cfg.clone()
	c.Apps[to] = c.Apps[from]
	delete(c.Apps, from)
	return c
}

// A table that renames an app keeps its targets: a request in flight on
// the old name is still the fleet's work under the new one, so a drain
// waits for it, and the instance's health and pooled connections carry
// over.
func TestRenamedAppKeepsItsTargetsAndTheirWork(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	arrived := make(chan struct{}, 1)
	slow := newBackend(t, "blue")
	t.Cleanup(free) // after the server's own: a failing test does not leave blue's handler waiting
	slow.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			<-release
		}
		w.Header().Set("X-Fleet", "blue")
		io.WriteString(w, "blue")
	})
	green := newBackend(t, "green")
	cfg := twoFleets(slow.addr(), green.addr(), 100, 0)
	cfg.Apps["shop"].Fleets["blue"].Revision = "2"
	cfg.Apps["shop"].Fleets["green"].Revision = "3"
	r := startRouter(t, renamedApp(cfg, "shop", "shop.web"))
	before := r.targets["shop.web/blue/2/"+slow.addr()]
	if before == nil {
		t.Fatal("no target for blue under shop.web")
	}

	done := make(chan int, 1)
	go func() {
		resp, err := http.Get(prodURL(r) + "/slow")
		if err != nil {
			done <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request did not reach blue")
	}

	// The app takes its own name again, green live, in one table.
	next := renamedApp(r.Config(), "shop.web", "shop")
	next.Apps["shop"].Fleets["blue"].Weight = 0
	next.Apps["shop"].Fleets["green"].Weight = 100
	if _, err := r.Apply(next); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	after := r.targets["shop/blue/2/"+slow.addr()]
	r.mu.Unlock()
	if after != before {
		t.Fatal("the renamed app's blue target is a new one: its health, pool and work were dropped")
	}
	if after.retired.Load() {
		t.Fatal("the renamed app's blue target was retired")
	}
	if got := after.appName(); got != "shop" {
		t.Fatalf("the target says it serves %q, want shop", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	drained := make(chan DrainReport, 1)
	go func() {
		rep, err := r.Drain(ctx, DrainRequest{App: "shop", Fleet: "blue", Timeout: Duration(15 * time.Second)})
		if err != nil {
			t.Error(err)
		}
		drained <- rep
	}()
	// The drain still waits for the request begun under the old name.
	testwait.For(t, 5*time.Second, "blue fenced by the drain", func() bool {
		return r.Config().Apps["shop"].Fleets["blue"].Fenced
	})
	select {
	case rep := <-drained:
		t.Fatalf("the drain ended with a request in flight on blue: %+v", rep)
	default:
	}
	free()
	if code := <-done; code != http.StatusOK {
		t.Fatalf("the request in flight across the rename got %d", code)
	}
	if rep := <-drained; !rep.Complete {
		t.Fatalf("drain: %+v", rep)
	}
	if resp, body := get(t, http.DefaultClient, prodURL(r)+"/"); resp.StatusCode != http.StatusOK || body != "green" {
		t.Fatalf("after the rename production answered %d %q", resp.StatusCode, body)
	}
}

// A target a table drops under one app and names under no other is
// retired as before.
func TestDroppedTargetIsRetired(t *testing.T) {
	blue, green := newBackend(t, "blue"), newBackend(t, "green")
	r := startRouter(t, twoFleets(blue.addr(), green.addr(), 100, 0))
	old := r.targets["shop/blue//"+blue.addr()]
	if old == nil {
		t.Fatal("no blue target")
	}
	next := renamedApp(r.Config(), "shop", "shop.web")
	delete(next.Apps["shop.web"].Fleets, "blue")
	next.Apps["shop.web"].Fleets["green"].Weight = 100
	if _, err := r.Apply(next); err != nil {
		t.Fatal(err)
	}
	if !old.retired.Load() {
		t.Fatal("a target no app names any more was not retired")
	}
	if r.targets["shop.web/green//"+green.addr()] == nil {
		t.Fatal("green is not in the renamed app")
	}
}
