package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/server"
	"bluegreen/internal/testwait"
)

// firstTraffic is when the deployment first gave green production weight.
func firstTraffic(t *testing.T, evs []api.Event) time.Time {
	t.Helper()
	for _, st := range trafficSteps(evs) {
		if st.weight > 0 {
			return st.at
		}
	}
	t.Fatal("the deployment never gave green traffic")
	return time.Time{}
}

// A revision that moves its health check is checked there, and only there:
// blue keeps its own path, so it stays healthy, and green gets no production
// request before the first step gives it weight.
func TestHealthPathChangeLeavesBlueAlone(t *testing.T) {
	e := newDeployEnv(t)
	e.deployLive("v1", e.specFor(quick))
	l := startLoad(t, "http://"+e.prod+"/", 200)
	v2 := e.spec(specParts{env: `{ HELLO_HEALTH_PATH: /health }`, health: "/health",
		extra: quick + "strategy:\n  steps:\n    - { weight: 25, pause: 2s }\n    - { weight: 100 }\n"})
	d := e.deploy("v2", v2, nil)
	d = e.waitEnd(d.ID, 60*time.Second)
	recs := l.stop()
	if d.Outcome != "succeeded" {
		t.Fatalf("%s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	if f := failures(recs); len(f) > 0 {
		t.Fatalf("%d of %d requests failed: %s\n%s", len(f), len(recs), summary(f), e.eventLog(d.ID))
	}
	first := firstTraffic(t, e.events(d.ID))
	for _, r := range recs {
		if r.version == "v2" && r.start.Before(first) {
			t.Fatalf("v2 answered a production request sent at %s, before its first step at %s", r.start.Format("15:04:05.000"), first.Format("15:04:05.000"))
		}
	}
	t.Logf("%s, 0 failed; v2's first production request after its first step (%s)", summary(recs), first.Format("15:04:05.000"))
}

// Renaming the app's host and moving its production listener take effect
// when green becomes live: until then blue's host and listener serve both
// fleets, the test listener already answers green's own host, and nothing
// fails on the way.
func TestHostRenameAndListenerMove(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	hosts := func(h string) specParts { return specParts{router: "  hosts: [" + h + "]\n", extra: quick} }
	e.deployLive("v1", e.spec(hosts("old.example.com")))
	l := startLoad(t, "http://"+e.prod+"/", 200, "-host", "old.example.com")
	get := func(addr, host string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("X-Version")
	}

	// v2 renames the host and holds for approval: the test listener answers
	// green on its new host, production still answers the old one.
	p := hosts("new.example.com")
	p.extra = quick + "strategy:\n  approval: manual\n  steps:\n    - { weight: 50, pause: 1s }\n    - { weight: 100 }\n"
	d := e.deploy("v2", e.spec(p), nil)
	e.waitPhase(d.ID, 30*time.Second, "AwaitingApproval")
	if code, v := get(e.test, "new.example.com"); code != 200 || v != "v2" {
		t.Fatalf("test listener, new host: %d %s; want 200 from v2", code, v)
	}
	if code, _ := get(e.prod, "new.example.com"); code != 404 {
		t.Fatalf("production, new host before green is live: %d; want 404", code)
	}
	if _, err := e.api.Promote(ctx, "shop", false); err != nil {
		t.Fatal(err)
	}
	d = e.waitEnd(d.ID, 60*time.Second)
	if d.Outcome != "succeeded" {
		t.Fatalf("%s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	live := time.Time{}
	for _, ev := range e.events(d.ID) {
		if ev.Kind == "phase" && ev.Fields["phase"] == "Retiring" {
			live = ev.Time
		}
	}
	recs := l.stop()
	for _, r := range recs {
		if r.start.Before(live) && (r.status < 200 || r.status >= 400) {
			t.Fatalf("a request for the old host failed before green became live: %s", summary([]loadRecord{r}))
		}
	}
	if code, v := get(e.prod, "new.example.com"); code != 200 || v != "v2" {
		t.Fatalf("production, new host after: %d %s", code, v)
	}
	if code, _ := get(e.prod, "old.example.com"); code != 404 {
		t.Fatalf("production, old host after: %d; want 404", code)
	}
	t.Logf("host rename: %s before green became live, none failed", summary(recs))

	// v3 moves the production listener: the old one serves until green is
	// live, then the new one does.
	moved := freeAddr(t)
	spec3 := strings.Replace(e.spec(p), "production: "+e.prod, "production: "+moved, 1)
	spec3 = strings.Replace(spec3, "approval: manual", "approval: auto", 1)
	l = startLoad(t, "http://"+e.prod+"/", 200, "-host", "new.example.com")
	d = e.deploy("v3", spec3, nil)
	d = e.waitPhase(d.ID, 60*time.Second, "Retiring", "Succeeded")
	recs = l.stop()
	d = e.waitEnd(d.ID, 60*time.Second)
	if d.Outcome != "succeeded" {
		t.Fatalf("%s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	for _, ev := range e.events(d.ID) {
		if ev.Kind == "phase" && ev.Fields["phase"] == "Retiring" {
			live = ev.Time
		}
	}
	var before int
	for _, r := range recs {
		if !r.start.Before(live) {
			continue
		}
		before++
		if r.status < 200 || r.status >= 400 {
			t.Fatalf("a request to the old listener failed before green became live: %s", summary([]loadRecord{r}))
		}
	}
	if before < 100 {
		t.Fatalf("only %d requests reached the old listener before the move", before)
	}
	if code, v := get(moved, "new.example.com"); code != 200 || v != "v3" {
		t.Fatalf("new listener: %d %s", code, v)
	}
	if code, _ := get(e.prod, "new.example.com"); code != 0 {
		t.Fatalf("old listener still answers (%d) after green became live", code)
	}
	t.Logf("listener move: %d requests to the old listener before green became live, none failed", before)
}

// A routing table the router will not take ends the deployment at once,
// with the router's reason naming the app that asked.
func TestRefusedRoutesEndTheDeployment(t *testing.T) {
	e := newDeployEnv(t)
	e.deployLive("v1", e.spec(specParts{router: "  hosts: [shop.example.com]\n", extra: quick}))
	slow := "strategy:\n  progress_deadline: 10m\n"

	// Another app claims shop's host on shop's listener.
	other := strings.Replace(e.spec(specParts{router: "  hosts: [shop.example.com]\n", extra: quick + slow}), "app: shop", "app: api", 1)
	other = strings.Replace(other, "test: "+e.test, "test: "+freeAddr(t), 1)
	start := time.Now()
	d := e.deploy("a1", other, nil)
	d = e.waitEnd(d.ID, 30*time.Second)
	want := `the router refused the routes of app api: apps.shop: host "shop.example.com" on ` + e.prod + ` is claimed by app api and by app shop`
	if d.Outcome != "rolled_back" || !strings.Contains(d.Reason, want) {
		t.Fatalf("host claimed twice: %s (%s); want rolled_back with %q\n%s", d.Outcome, d.Reason, want, e.eventLog(d.ID))
	}
	t.Logf("host claimed twice: rolled back in %s: %s", time.Since(start).Round(time.Millisecond), d.Reason)

	// A listener another program holds is found when the router opens it.
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	busy := strings.Replace(e.spec(specParts{router: "  hosts: [shop.example.com]\n", extra: quick + slow}), "test: "+e.test, "test: "+held.Addr().String(), 1)
	start = time.Now()
	d = e.deploy("v2", busy, nil)
	d = e.waitEnd(d.ID, 30*time.Second)
	if d.Outcome != "rolled_back" || !strings.Contains(d.Reason, "the router refused the routes of app shop: opening listener "+held.Addr().String()) {
		t.Fatalf("busy listener: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	t.Logf("busy listener: rolled back in %s: %s", time.Since(start).Round(time.Millisecond), d.Reason)
	if code, v := getVersion(t, e.prod, "shop.example.com"); code != 200 || v != "v1" {
		t.Fatalf("shop after the refused deployments: %d %s", code, v)
	}
	// The CLI waits for the end and prints the router's reason.
	cmd := exec.Command(bin.bluegreen, "deploy", "--data", e.data, "--wait", e.bundleDir("v3", busy, nil))
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 3 || !strings.Contains(string(out), "opening listener "+held.Addr().String()) {
		t.Fatalf("deploy --wait: exit %d\n%s", cmd.ProcessState.ExitCode(), out)
	}
}

func getVersion(t *testing.T, addr, host string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Version")
}

// abort ends a rollback that would take long (an on_rollback hook that
// hangs), across a restart of the server too; then the app deploys again.
func TestAbortEndsAStuckRollback(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	e.deployLive("v1", e.specFor(quick))
	stuck := e.specFor(quick + "hooks:\n  validate_service: [{ run: ./hooks/fail.sh }]\n  on_rollback: [{ run: ./hooks/hang.sh, timeout: 30m }]\n")
	// The hook's sleep is told apart from any other by its length.
	hang := fmt.Sprintf("sleep %d", 3600+time.Now().UnixNano()%1000)
	d := e.deploy("v2", stuck, map[string]string{
		"hooks/fail.sh": "#!/bin/sh\necho smoke test failed\nexit 1\n",
		"hooks/hang.sh": "#!/bin/sh\necho restoring the database\nexec " + hang + "\n",
	})
	e.waitPhase(d.ID, 30*time.Second, "RollingBack")
	testwait.For(t, 20*time.Second, "the on_rollback hook to run", func() bool {
		out, _ := exec.Command("pgrep", "-f", hang).Output()
		return len(out) > 0
	})
	e.killServer()
	e.startServer()
	if _, err := e.api.Deploy(ctx, "shop", 1); err == nil {
		t.Fatal("a new deployment was accepted while one rolls back")
	}
	start := time.Now()
	if _, err := e.api.Abort(ctx, "shop", "restore by hand"); err != nil {
		t.Fatalf("abort of a rollback: %v", err)
	}
	d = e.waitEnd(d.ID, 20*time.Second)
	if d.Outcome != "rolled_back" {
		t.Fatalf("%s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	t.Logf("the abort ended the rollback in %s", time.Since(start).Round(time.Millisecond))
	if _, err := e.api.Abort(ctx, "shop", "again"); err == nil {
		t.Fatal("a second abort found something to do")
	}
	if code, v := getVersion(t, e.prod, "shop"); code != 200 || v != "v1" {
		t.Fatalf("after the abort: %d %s", code, v)
	}
	testwait.For(t, 20*time.Second, "the hook's process to be gone", func() bool {
		out, _ := exec.Command("pgrep", "-f", hang).Output()
		return len(out) == 0
	})
	e.deployLive("v3", e.specFor(quick))
}

// A server killed mid-drain and restarted ends the drain at the deadline
// the first one set, and the drain report counts from the drain's start.
func TestRestartMidDrainKeepsTheDeadline(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	retire := "bake: 0s\nretire:\n  keep_blue: 0s\n  drain_timeout: 6s\n"
	e.deployLive("v1", e.specFor(retire))
	// An endless SSE stream on blue.
	resp, err := http.Get("http://" + e.prod + "/sse?interval=100ms")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	closed := make(chan time.Time, 1)
	go func() {
		r := bufio.NewReader(resp.Body)
		for {
			if _, err := r.ReadString('\n'); err != nil {
				closed <- time.Now()
				return
			}
		}
	}()
	d := e.deploy("v2", e.specFor(retire), nil)
	var deadline time.Time
	testwait.For(t, 30*time.Second, "blue's drain to start", func() bool {
		got, err := e.api.Deployment(ctx, d.ID)
		if err != nil {
			return false
		}
		deadline = got.Deadlines["drain"]
		return !deadline.IsZero()
	})
	testwait.For(t, 10*time.Second, "two seconds of the drain", func() bool { return time.Until(deadline) < 4*time.Second })
	e.killServer()
	e.startServer()
	var end time.Time
	select {
	case end = <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("the stream on blue was never closed")
	}
	if off := end.Sub(deadline); off < -time.Second || off > time.Second {
		t.Fatalf("the stream was closed at %s, %s from the drain's deadline %s", end.Format("15:04:05.000"), off, deadline.Format("15:04:05.000"))
	}
	d = e.waitEnd(d.ID, 30*time.Second)
	if d.Outcome != "succeeded" {
		t.Fatalf("%s (%s)", d.Outcome, d.Reason)
	}
	for _, ev := range e.events(d.ID) {
		if ev.Kind == "drain" {
			waited, _ := ev.Fields["waited_seconds"].(float64)
			if waited < 5 || waited > 8 || ev.Fields["open_streams"] != float64(1) {
				t.Fatalf("drain event %q %v; want about 6s waited and one stream closed", ev.Message, ev.Fields)
			}
			t.Logf("closed %s from the original deadline; drain event: %s (waited %.1fs)", end.Sub(deadline).Round(time.Millisecond), ev.Message, waited)
		}
	}
}

// A release that fails its checks as a timed pause ends never gets more
// traffic than the weight where it failed.
func TestBrokenReleaseDuringTimedPause(t *testing.T) {
	e := newDeployEnv(t)
	e.deployLive("v1", e.specFor(quick))
	l := startLoad(t, "http://"+e.prod+"/", 200)
	bad := e.spec(specParts{env: `{ HELLO_ERROR_RATE: "0.3" }`, extra: quick +
		"strategy:\n  steps:\n    - { weight: 25, pause: 2s }\n    - { weight: 100 }\n" +
		"checks:\n  interval: 2s\n  failure_limit: 3\n  min_requests: 5\n  rules:\n    - error_rate: { max: 0.05 }\n"})
	d := e.deploy("v3", bad, nil)
	d = e.waitEnd(d.ID, 60*time.Second)
	l.stop()
	if d.Outcome != "rolled_back" || !strings.Contains(d.Reason, "error_rate.max") {
		t.Fatalf("%s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	for _, st := range trafficSteps(e.events(d.ID)) {
		if st.weight > 25 {
			t.Fatalf("green went to %d%% after failing at 25%%\n%s", st.weight, e.eventLog(d.ID))
		}
	}
	t.Logf("rolled back at 25%%: %s", d.Reason)
}

// A canary nobody sends traffic to is never promoted by silence: it waits
// for a person after inconclusive_limit evaluations, and promote moves it
// on; with on_inconclusive: rollback it rolls back.
func TestSilentCanaryDoesNotPromote(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	e.deployLive("v1", e.specFor(quick))
	silent := func(on string) string {
		return e.specFor(quick + "strategy:\n  steps:\n    - { weight: 20, pause: 1s }\n    - { weight: 100 }\n" +
			"checks:\n  interval: 500ms\n  min_requests: 10\n  inconclusive_limit: 3\n  on_inconclusive: " + on + "\n  rules:\n    - error_rate: { max: 0.1 }\n")
	}
	d := e.deploy("v2", silent("wait"), nil)
	stalls := func(n int) {
		t.Helper()
		testwait.ForOr(t, 30*time.Second, fmt.Sprintf("the deployment to wait for a person (%d times)", n), func() bool {
			seen := 0
			for _, ev := range e.events(d.ID) {
				if ev.Kind == "checks.inconclusive" {
					seen++
				}
			}
			return seen >= n
		}, func() string { return e.eventLog(d.ID) })
	}
	stalls(1)
	st, err := e.api.Status(ctx, "shop", "")
	if err != nil {
		t.Fatal(err)
	}
	if st.Deployment == nil || st.Deployment.Phase != "Shifting" || st.Progress == nil || !strings.Contains(st.Progress.Next, "waits for promote") {
		t.Fatalf("status while silent: %+v, %+v", st.Deployment, st.Progress)
	}
	for _, s := range trafficSteps(e.events(d.ID)) {
		if s.weight > 20 {
			t.Fatalf("green went to %d%% on silence\n%s", s.weight, e.eventLog(d.ID))
		}
	}
	// promote ends the step; green then bakes at 100 %, where silence
	// holds it again until a person says go.
	if _, err := e.api.Promote(ctx, "shop", false); err != nil {
		t.Fatal(err)
	}
	stalls(2)
	if got, err := e.api.Deployment(ctx, d.ID); err != nil || got.Phase != "Baking" {
		t.Fatalf("the second wait: %s %v; want Baking", got.Phase, err)
	}
	if _, err := e.api.Promote(ctx, "shop", false); err != nil {
		t.Fatal(err)
	}
	d = e.waitEnd(d.ID, 30*time.Second)
	if d.Outcome != "succeeded" {
		t.Fatalf("after promote: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	d = e.deploy("v3", silent("rollback"), nil)
	d = e.waitEnd(d.ID, 30*time.Second)
	if d.Outcome != "rolled_back" || !strings.Contains(d.Reason, "inconclusive") {
		t.Fatalf("on_inconclusive rollback: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	t.Logf("on_inconclusive: rollback: %s", d.Reason)
}

// A second server on the same data directory is refused and names the
// first; the first goes on undisturbed.
func TestSecondServerRefused(t *testing.T) {
	e := newDeployEnv(t)
	e.deployLive("v1", e.specFor(quick))
	first, err := server.ReadInfo(e.data)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(e.binary, "server", "--data", e.data, "--api", "127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	want := fmt.Sprintf("another bluegreen server (pid %d, API http://%s) runs on %s", first.PID, first.API, e.data)
	if err == nil || !strings.Contains(string(out), want) {
		t.Fatalf("second server: %v\n%s\nwant %q", err, out, want)
	}
	if now, err := server.ReadInfo(e.data); err != nil || now != first {
		t.Fatalf("server.json after the refusal: %+v %v", now, err)
	}
	if code, v := getVersion(t, e.prod, "shop"); code != 200 || v != "v1" {
		t.Fatalf("after the refusal: %d %s", code, v)
	}
	e.deployLive("v2", e.specFor(quick))
	// A server stopped cleanly leaves no server.json pointing at it.
	_ = e.srv.Process.Signal(syscall.SIGTERM)
	<-e.srvDone
	if _, err := os.Stat(filepath.Join(e.data, "server.json")); !os.IsNotExist(err) {
		t.Fatalf("server.json after a clean stop: %v", err)
	}
	e.startServer()
}

// The preview header and `logs --fleet` name roles across deployments in a
// row: green is always the candidate, blue the live revision, whichever
// slots they run in.
func TestPreviewHeaderNamesRolesAcrossDeployments(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	p := specParts{router: "  preview_header: X-Bluegreen-Fleet\n", extra: quick}
	e.deployLive("v1", e.spec(p))
	manual := p
	manual.extra = quick + "strategy:\n  approval: manual\n"
	c := &http.Client{}
	for _, pair := range [][2]string{{"v1", "v2"}, {"v2", "v3"}} {
		blue, green := pair[0], pair[1]
		d := e.deploy(green, e.spec(manual), nil)
		e.waitPhase(d.ID, 30*time.Second, "AwaitingApproval")
		for hdr, want := range map[string]string{"green": green, "blue": blue, "": blue} {
			var h []string
			if hdr != "" {
				h = []string{"X-Bluegreen-Fleet", hdr}
			}
			if v, _ := version(t, c, "http://"+e.prod+"/", h...); v != want {
				t.Fatalf("deploying %s over %s: preview %q reached %s, want %s", green, blue, hdr, v, want)
			}
		}
		for role, want := range map[string]string{"green": green, "blue": blue} {
			// The output is read from the instances' files as they write it.
			var out []byte
			var err error
			testwait.For(t, 10*time.Second, "logs --fleet "+role+" to show "+want, func() bool {
				out, err = exec.Command(bin.bluegreen, "logs", "shop", "--data", e.data, "--fleet", role, "--tail", "50").CombinedOutput()
				return err == nil && strings.Contains(string(out), "hello "+want)
			})
			if other := map[string]string{green: blue, blue: green}[want]; strings.Contains(string(out), "hello "+other) {
				t.Fatalf("deploying %s over %s: logs --fleet %s shows %s:\n%s", green, blue, role, other, out)
			}
		}
		if _, err := e.api.Promote(ctx, "shop", false); err != nil {
			t.Fatal(err)
		}
		if d = e.waitEnd(d.ID, 30*time.Second); d.Outcome != "succeeded" {
			t.Fatalf("%s: %s (%s)", green, d.Outcome, d.Reason)
		}
	}
}

// validate_service runs before the test listener serves green: it is not
// given BG_TEST_URL; after_allow_test_traffic is, and it works.
func TestHooksGetOnlyURLsThatWork(t *testing.T) {
	e := newDeployEnv(t)
	e.deployLive("v1", e.specFor(quick))
	out := t.TempDir()
	// The smoke test speaks HTTP through bash's /dev/tcp, as a hook without
	// curl would.
	hook := `#!/bin/bash
set -e
echo "${BG_TEST_URL:-none}" > ` + out + `/$BG_LIFECYCLE_EVENT
if [ -n "$BG_TEST_URL" ]; then
  hostport=${BG_TEST_URL#http://}
  exec 3<>/dev/tcp/${hostport%:*}/${hostport##*:}
  printf 'GET / HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n' >&3
  read -r status <&3
  echo "$status"
  case "$status" in *" 200 "*) exit 0;; esac
  exit 1
fi
`
	spec := e.specFor(quick + "hooks:\n  validate_service: [{ run: ./hooks/smoke.sh }]\n  after_allow_test_traffic: [{ run: ./hooks/smoke.sh }]\n")
	d := e.deploy("v2", spec, map[string]string{"hooks/smoke.sh": hook})
	if d = e.waitEnd(d.ID, 60*time.Second); d.Outcome != "succeeded" {
		t.Fatalf("%s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	for event, want := range map[string]string{"validate_service": "none", "after_allow_test_traffic": "http://" + e.test} {
		b, err := os.ReadFile(filepath.Join(out, event))
		if err != nil || strings.TrimSpace(string(b)) != want {
			t.Fatalf("%s saw BG_TEST_URL %q (%v), want %q", event, b, err, want)
		}
	}
}

// With preview_secret_param, only a request that carries the secret (a
// secure param) reaches green through the preview header.
func TestPreviewSecretFromTheParamStore(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	secret := "pr3view-s3cret-for-testers"
	if _, err := e.api.PutParam(ctx, "/shop/PREVIEW", secret, true, 0); err != nil {
		t.Fatal(err)
	}
	p := specParts{router: "  preview_header: X-Bluegreen-Fleet\n  preview_secret_param: /shop/PREVIEW\n",
		extra: quick + "params: [/shop/PREVIEW]\n"}
	e.deployLive("v1", e.spec(p))
	manual := p
	manual.extra = quick + "params: [/shop/PREVIEW]\nstrategy:\n  approval: manual\n"
	d := e.deploy("v2", e.spec(manual), nil)
	e.waitPhase(d.ID, 30*time.Second, "AwaitingApproval")
	c := &http.Client{}
	for hdr, want := range map[string]string{
		"green":                         "v1",
		"green; secret=not-the-secret!": "v1",
		"green; secret=" + secret:       "v2",
	} {
		if v, _ := version(t, c, "http://"+e.prod+"/", "X-Bluegreen-Fleet", hdr); v != want {
			t.Errorf("preview %q reached %s, want %s", hdr, v, want)
		}
	}
	if _, err := e.api.Promote(ctx, "shop", false); err != nil {
		t.Fatal(err)
	}
	if d = e.waitEnd(d.ID, 30*time.Second); d.Outcome != "succeeded" {
		t.Fatalf("%s (%s)", d.Outcome, d.Reason)
	}
}

// A router that stops answering (SIGSTOP: alive, but silent) makes every
// step fail with an error that might pass: the deployment tries again, but
// never past progress_deadline, and ends with the true reason. Once the
// router answers again, blue is what it serves.
func TestADeploymentEndsWhenTheRouterStopsAnswering(t *testing.T) {
	e := newDeployEnv(t)
	e.deployLive("v1", e.specFor(quick))
	routerPid := readRouterPid(t, e.data)
	if err := syscall.Kill(routerPid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(routerPid, syscall.SIGCONT) })
	d := e.deploy("v2", e.specFor(quick+"strategy:\n  progress_deadline: 3s\n"), nil)
	d = e.waitEnd(d.ID, 3*time.Minute)
	if err := syscall.Kill(routerPid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if d.Outcome == "succeeded" || !strings.Contains(d.Reason, "kept failing for 3s (progress_deadline)") {
		t.Fatalf("%s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	t.Logf("ended %s in %s: %s", d.Outcome, d.FinishedAt.Sub(d.CreatedAt).Round(time.Second), d.Reason)
	testwait.For(t, 30*time.Second, "v1 to answer again", func() bool {
		resp, err := http.Get("http://" + e.prod + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200 && resp.Header.Get("X-Version") == "v1"
	})
}

func readRouterPid(t *testing.T, data string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "router", "router.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}
