package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/testwait"
)

// gateAnswer is what a client got from the production listener.
type gateAnswer struct {
	status  int
	version string
	body    string
	hdr     http.Header
	err     error
}

func prodGet(url string, hdr ...string) gateAnswer {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{Timeout: 2 * time.Minute}
	resp, err := c.Do(req)
	if err != nil {
		return gateAnswer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return gateAnswer{status: resp.StatusCode, version: resp.Header.Get("X-Version"), body: string(b), hdr: resp.Header, err: err}
}

// gate is the app's gate as its status shows it.
func (e *deployEnv) gate() *api.Gate {
	e.t.Helper()
	st, err := e.api.Status(context.Background(), "shop", "10s")
	if err != nil {
		e.t.Fatal(err)
	}
	return st.Gate
}

// held waits until the router holds at least n of the app's requests.
func (e *deployEnv) waitHeld(n int64) {
	e.t.Helper()
	testwait.For(e.t, 30*time.Second, strconv.FormatInt(n, 10)+" held requests", func() bool {
		g := e.gate()
		return g != nil && g.Held != nil && *g.Held >= n
	})
}

// A user pauses the app under load and resumes it: the requests wait, and
// none fails.
func TestPauseUnderLoadAsAUser(t *testing.T) {
	e := newDeployEnv(t)
	e.deployLive("v1", e.specFor(quick))
	l := startLoad(t, "http://"+e.prod+"/", 100)
	testwait.For(t, 30*time.Second, "load on the live fleet", func() bool {
		st, err := e.api.Status(context.Background(), "shop", "10s")
		var n uint64
		for _, f := range st.Fleets {
			n += f.Requests
		}
		return err == nil && n > 20
	})

	pausedAt := time.Now()
	out := e.mustCLI("pause", "shop", "--max-wait", "8s", "--max-held", "500")
	if !strings.Contains(out, "shop paused: new production requests are held (at most 500, each up to 8s)") {
		t.Fatalf("pause said: %s", out)
	}
	e.waitHeld(8)
	// The migration takes a second.
	testwait.For(t, 30*time.Second, "a second of pause", func() bool { return time.Since(pausedAt) > time.Second })
	if out := e.mustCLI("status", "shop"); !strings.Contains(out, "PAUSED since") || !strings.Contains(out, "by admin") {
		t.Errorf("status while paused:\n%s", out)
	}
	if out := e.mustCLI("apps"); !strings.Contains(out, "TRAFFIC") || !strings.Contains(out, "paused") {
		t.Errorf("apps while paused:\n%s", out)
	}
	// The test listener keeps serving (green is none here: 404, not held).
	if a := prodGet("http://" + e.test + "/"); a.err != nil || a.status != http.StatusNotFound {
		t.Errorf("test listener while paused: %+v", a)
	}

	resumedAt := time.Now()
	out = e.mustCLI("resume", "shop")
	if !strings.Contains(out, "shop resumed") {
		t.Fatalf("resume said: %s", out)
	}
	if out := e.mustCLI("resume", "shop"); !strings.Contains(out, "shop was not paused") {
		t.Errorf("a second resume said: %s", out)
	}
	testwait.For(t, 30*time.Second, "a second of load after resume", func() bool { return time.Since(resumedAt) > time.Second })
	recs := l.stop()
	if f := failures(recs); len(f) > 0 {
		t.Fatalf("%d of %d requests failed: %s\nbgload: %s", len(f), len(recs), summary(f), l.out.String())
	}
	waited, longest := 0, time.Duration(0)
	for _, r := range recs {
		if r.start.After(pausedAt) && r.start.Before(resumedAt) && r.end.After(resumedAt) {
			waited++
			longest = max(longest, r.end.Sub(r.start))
		}
	}
	if waited < 8 {
		t.Fatalf("%d requests sent while paused were answered after resume, want at least 8", waited)
	}
	t.Logf("%d requests, 0 failed; %d waited through the pause of %s, the longest %s", len(recs), waited,
		resumedAt.Sub(pausedAt).Round(time.Millisecond), longest.Round(time.Millisecond))

	kinds := map[string]api.Event{}
	for _, ev := range e.appEvents() {
		kinds[ev.Kind] = ev
	}
	for _, k := range []string{"paused", "resumed"} {
		ev, ok := kinds[k]
		by, _ := ev.Fields["by"].(map[string]any)
		if !ok || by["token"] != "admin" || !strings.Contains(ev.Message, "(by admin") {
			t.Errorf("event %s: %+v", k, ev)
		}
	}
}

// Maintenance answers a page, survives a restart of the server and of the
// router, and ends; a pause survives them too.
func TestMaintenanceAndPauseSurviveRestarts(t *testing.T) {
	e := newDeployEnv(t)
	e.deployLive("v1", e.specFor(quick))
	url := "http://" + e.prod + "/"
	if a := prodGet(url); a.status != 200 || a.version != "v1" {
		t.Fatalf("before: %+v", a)
	}
	out := e.mustCLI("maintenance", "shop", "on", "--message", "Back at 10:00 UTC.", "--retry-after", "2m")
	if !strings.Contains(out, "shop in maintenance") {
		t.Fatalf("maintenance on said: %s", out)
	}
	check := func(when string) {
		t.Helper()
		html := prodGet(url, "Accept", "text/html,application/xhtml+xml")
		if html.status != 503 || html.hdr.Get("Retry-After") != "120" || !strings.Contains(html.body, "<h1>Down for maintenance</h1>") ||
			!strings.Contains(html.body, "Back at 10:00 UTC.") {
			t.Fatalf("%s: browser got %+v", when, html)
		}
		js := prodGet(url, "Accept", "application/json")
		var body struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		if js.status != 503 || json.Unmarshal([]byte(js.body), &body) != nil || body.Code != "maintenance" || body.Message != "Back at 10:00 UTC." {
			t.Fatalf("%s: JSON client got %+v", when, js)
		}
	}
	check("maintenance on")
	e.wantCLI(1, "is in maintenance, not paused", "resume", "shop")

	// The server dies, and the router with it; both come back.
	router := e.routerPID()
	e.killServer()
	pid, _ := strconv.Atoi(router)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.startServer()
	if e.routerPID() == router {
		t.Fatal("the router was not started again")
	}
	check("after the server and the router restarted")
	if g := e.gate(); g == nil || g.State != "maintenance" || g.Message != "Back at 10:00 UTC." {
		t.Fatalf("gate after restart: %+v", g)
	}

	// A pause replaces maintenance and is kept across a server restart.
	e.mustCLI("pause", "shop", "--max-wait", "1m")
	e.killServer()
	e.startServer()
	if g := e.gate(); g == nil || g.State != "paused" || g.MaxWait != "1m0s" {
		t.Fatalf("gate after restart: %+v", g)
	}
	var wg sync.WaitGroup
	answers := make([]gateAnswer, 3)
	for i := range answers {
		wg.Go(func() { answers[i] = prodGet(url) })
	}
	e.waitHeld(3)
	e.mustCLI("resume", "shop")
	wg.Wait()
	for i, a := range answers {
		if a.err != nil || a.status != 200 || a.version != "v1" {
			t.Errorf("held request %d: %+v", i, a)
		}
	}
	if out := e.mustCLI("maintenance", "shop", "off"); !strings.Contains(out, "shop was not in maintenance") {
		t.Errorf("maintenance off when serving said: %s", out)
	}
	if a := prodGet(url); a.status != 200 {
		t.Fatalf("after resume: %+v", a)
	}
}

// A deployment runs while the app is paused; the held requests go to the
// fleet that is live at resume.
func TestDeployWhilePaused(t *testing.T) {
	e := newDeployEnv(t)
	e.deployLive("v1", e.specFor(quick))
	url := "http://" + e.prod + "/"
	e.mustCLI("pause", "shop", "--max-wait", "2m")
	var wg sync.WaitGroup
	answers := make([]gateAnswer, 4)
	for i := range answers {
		wg.Go(func() { answers[i] = prodGet(url) })
	}
	e.waitHeld(4)
	e.deployLive("v2", e.specFor(quick+"strategy: { preset: AllAtOnce }\n"))
	if g := e.gate(); g == nil || g.State != "paused" || g.Held == nil || *g.Held != 4 {
		t.Fatalf("gate after the deployment: %+v", g)
	}
	e.mustCLI("resume", "shop")
	wg.Wait()
	for i, a := range answers {
		if a.err != nil || a.status != 200 || a.version != "v2" {
			t.Errorf("held request %d: %+v", i, a)
		}
	}
}
