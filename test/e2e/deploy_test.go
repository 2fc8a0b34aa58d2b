package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/testwait"
)

// quick makes the lifecycle short enough for tests.
const quick = `bake: 1s
retire:
  keep_blue: 0s
  drain_timeout: 2s
`

// details is what the tests read of a deployment's engine details.
type details struct {
	Slot     string `json:"slot"`
	BlueSlot string `json:"blue_slot"`
	Weight   int    `json:"weight"`
}

func detailsOf(t *testing.T, d api.Deployment) details {
	t.Helper()
	var det details
	if err := json.Unmarshal(d.Details, &det); err != nil {
		t.Fatal(err)
	}
	return det
}

// deployLive deploys a version and waits until it succeeded.
func (e *deployEnv) deployLive(version, spec string) api.Deployment {
	e.t.Helper()
	d := e.deploy(version, spec, nil)
	d = e.waitEnd(d.ID, 60*time.Second)
	if d.Outcome != "succeeded" {
		e.t.Fatalf("deploying %s: %s (%s)\n%s", version, d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	return d
}

// trafficSteps are a deployment's weight changes, from its events.
type trafficStep struct {
	at     time.Time
	weight int
}

func trafficSteps(evs []api.Event) []trafficStep {
	var out []trafficStep
	for _, ev := range evs {
		if ev.Kind != "traffic" {
			continue
		}
		if w, ok := ev.Fields["weight"].(float64); ok {
			out = append(out, trafficStep{ev.Time, int(w)})
		}
	}
	return out
}

// checkShares checks that while each weight held, green's version got
// that share of production requests (within 10 points), and that no other
// version answered.
func checkShares(t *testing.T, recs []loadRecord, steps []trafficStep, end time.Time, blue, green string) {
	t.Helper()
	for i, st := range steps {
		until := end
		if i+1 < len(steps) {
			until = steps[i+1].at
		}
		// The table is pushed right after the event is written.
		from := st.at.Add(300 * time.Millisecond)
		var n, g int
		for _, r := range recs {
			if r.start.Before(from) || !r.end.Before(until) {
				continue
			}
			n++
			switch r.version {
			case green:
				g++
			case blue:
			default:
				t.Errorf("a request at %s was answered by %q, neither %s nor %s", r.start.Format("15:04:05.000"), r.version, blue, green)
			}
		}
		if n < 50 {
			if until.Sub(from) > 2*time.Second {
				t.Errorf("only %d requests while green had %d%% for %s", n, st.weight, until.Sub(st.at))
			}
			continue
		}
		share := 100 * float64(g) / float64(n)
		if math.Abs(share-float64(st.weight)) > 10 {
			t.Errorf("while green (%s) had weight %d%%, it answered %.1f%% of %d requests", green, st.weight, share, n)
		} else {
			t.Logf("weight %3d%%: %s answered %5.1f%% of %d requests", st.weight, green, share, n)
		}
	}
}

func TestEveryStrategyUnderLoad(t *testing.T) {
	e := newDeployEnv(t)
	e.deployLive("v1", e.specFor(quick))
	l := startLoad(t, "http://"+e.prod+"/", 200)

	type run struct {
		version, strategy string
		promote           bool
	}
	runs := []run{
		{"v2", "strategy: { preset: AllAtOnce }\n", false},
		{"v3", "strategy:\n  steps:\n    - { weight: 25, pause: 3s }\n    - { weight: 100 }\n", false},
		{"v4", "strategy:\n  steps:\n    - { weight: 30, pause: 2s }\n    - { weight: 60, pause: 2s }\n    - { weight: 100 }\n", false},
		{"v5", "strategy:\n  approval: manual\n  steps:\n    - { weight: 50, pause: {} }\n    - { weight: 100 }\n", true},
		// Nobody approves, and the spec says go on.
		{"v6", "strategy:\n  approval: manual\n  approval_timeout: 1s\n  on_approval_timeout: continue\n", false},
	}
	type done struct {
		run
		events []api.Event
		end    time.Time
	}
	var finished []done
	for _, r := range runs {
		d := e.deploy(r.version, e.specFor(quick+r.strategy), nil)
		if r.promote {
			e.waitPhase(d.ID, 30*time.Second, "AwaitingApproval")
			if _, err := e.api.Promote(context.Background(), "shop", false); err != nil {
				t.Fatal(err)
			}
			e.waitPhase(d.ID, 30*time.Second, "Shifting")
			// Stay at 50 % for two seconds of load, then go on.
			testwait.For(t, 30*time.Second, "two seconds at 50%", func() bool {
				st := trafficSteps(e.events(d.ID))
				return len(st) > 0 && st[len(st)-1].weight == 50 && time.Since(st[len(st)-1].at) > 2*time.Second
			})
			if _, err := e.api.Promote(context.Background(), "shop", false); err != nil {
				t.Fatal(err)
			}
		}
		d = e.waitEnd(d.ID, 60*time.Second)
		if d.Outcome != "succeeded" {
			t.Fatalf("%s: %s (%s)\n%s", r.version, d.Outcome, d.Reason, e.eventLog(d.ID))
		}
		finished = append(finished, done{r, e.events(d.ID), time.Now()})
	}
	// Let the last version serve alone for a moment.
	last := finished[len(finished)-1].end
	testwait.For(t, 10*time.Second, "a second of load after the last deployment", func() bool { return time.Since(last) > time.Second })
	recs := l.stop()
	if f := failures(recs); len(f) > 0 {
		t.Fatalf("%d of %d requests failed: %s\nbgload: %s", len(f), len(recs), summary(f), l.out.String())
	}
	prev := "v1"
	for _, d := range finished {
		steps := trafficSteps(d.events)
		if len(steps) == 0 {
			t.Fatalf("%s: no traffic events", d.version)
		}
		t.Logf("%s (%s): %d traffic steps", d.version, strings.TrimSpace(strings.ReplaceAll(d.strategy, "\n", " ")), len(steps))
		checkShares(t, recs, steps, d.end, prev, d.version)
		prev = d.version
	}
	for _, r := range recs {
		if r.start.After(last.Add(300*time.Millisecond)) && r.version != "v6" {
			t.Fatalf("after the last deployment a request was answered by %s", r.version)
		}
	}
	t.Logf("%s, 0 failed", summary(recs))
}

// faulty is a deployment that must roll back.
type faulty struct {
	name    string
	extra   string // spec text after the shared part
	env     string // process env (YAML flow mapping), or ""
	startup string // health.startup_timeout
	files   map[string]string
	reason  string // part of the rollback reason
	allow5x bool   // green's own 5xx answers may reach clients
	dies    bool   // green's instances exit: requests in flight to them may fail
}

func TestFailedDeploymentsRollBack(t *testing.T) {
	e := newDeployEnv(t)
	e.deployLive("v1", e.specFor(quick))
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no: error budget spent", http.StatusServiceUnavailable)
	}))
	defer hook.Close()
	marker := filepath.Join(t.TempDir(), "restored")
	shift := "strategy:\n  steps:\n    - { weight: 20, pause: 1m }\n    - { weight: 100 }\n"
	checks := func(rule string) string {
		return shift + "checks:\n  interval: 1s\n  failure_limit: 2\n  min_requests: 5\n  rules:\n    - " + rule + "\n"
	}
	cases := []faulty{
		{name: "a hook fails", reason: "hook validate_service[0] failed",
			extra: "hooks:\n  validate_service: [{ run: ./hooks/smoke.sh }]\n  on_rollback: [{ run: ./hooks/restore.sh }]\n",
			files: map[string]string{
				"hooks/smoke.sh":   "#!/bin/sh\necho smoke test: /checkout answered 500\nexit 3\n",
				"hooks/restore.sh": "#!/bin/sh\necho restored > " + marker + "\n",
			}},
		{name: "green never becomes healthy", reason: "green never became healthy", env: `{ HELLO_FAIL_HEALTH: "1" }`, startup: "2s"},
		{name: "green dies mid-shift", reason: "exited", env: `{ HELLO_EXIT_AFTER: 3s }`, extra: shift, dies: true},
		{name: "the 5xx rate trips a check", reason: "error_rate.max", env: `{ HELLO_ERROR_RATE: "0.5" }`,
			extra: checks("error_rate: { max: 0.1 }"), allow5x: true},
		{name: "latency trips a relative check", reason: "latency_p99.max_vs_blue", env: `{ HELLO_LATENCY: 150ms }`,
			extra: checks("latency_p99: { max_vs_blue: 3 }")},
		{name: "a webhook check says no", reason: "webhook", extra: checks(fmt.Sprintf("webhook: { url: %q }", hook.URL))},
		{name: "a command check fails", reason: "command",
			extra: checks("command: { run: ./hooks/check.sh, timeout: 5s }"),
			files: map[string]string{"hooks/check.sh": "#!/bin/sh\necho \"orders table is missing a column\"\nexit 1\n"}},
		{name: "green turns unhealthy mid-shift", reason: "failed its health check", env: `{ HELLO_FAIL_HEALTH_AFTER: 2s }`, extra: shift},
		{name: "the progress deadline passes", reason: "progress deadline", env: `{ HELLO_FAIL_HEALTH: "1" }`, startup: "1m",
			extra: "strategy:\n  progress_deadline: 2s\n"},
		{name: "green dies while blue is warm", reason: "exited", env: `{ HELLO_EXIT_AFTER: 3s }`, dies: true,
			extra: "retire:\n  keep_blue: 1m\n  drain_timeout: 2s\n"},
		{name: "approval times out", reason: "approval timed out",
			extra: "strategy:\n  approval: manual\n  approval_timeout: 2s\n"},
	}
	l := startLoad(t, "http://"+e.prod+"/", 200)
	type window struct {
		version    string
		from, to   time.Time
		allow5x    bool
		dies       bool
		deployment string
	}
	var windows []window
	for i, c := range cases {
		version := fmt.Sprintf("bad%d", i+1)
		extra := quick + c.extra
		if strings.Contains(c.extra, "retire:") {
			extra = "bake: 0s\n" + c.extra // its own retirement instead of quick's
		}
		spec := e.spec(specParts{env: c.env, startup: c.startup, extra: extra})
		from := time.Now()
		d := e.deploy(version, spec, c.files)
		d = e.waitEnd(d.ID, 60*time.Second)
		windows = append(windows, window{version, from, time.Now(), c.allow5x, c.dies, d.ID})
		if d.Outcome != "rolled_back" || !strings.Contains(d.Reason, c.reason) {
			t.Fatalf("%s: outcome %s, reason %q; want rolled_back with %q\n%s", c.name, d.Outcome, d.Reason, c.reason, e.eventLog(d.ID))
		}
		t.Logf("%s: rolled back: %s", c.name, d.Reason)
		app, err := e.api.App(context.Background(), "shop")
		if err != nil || app.LiveRevision != 1 || app.Deployment != nil {
			t.Fatalf("%s: after the rollback the app is %+v, %v; want revision 1 live and no deployment", c.name, app, err)
		}
		for _, in := range e.instances() {
			if in.Revision != 1 {
				t.Fatalf("%s: instance %s of revision %d is still there after the rollback", c.name, in.ID, in.Revision)
			}
		}
	}
	if b, err := os.ReadFile(marker); err != nil || strings.TrimSpace(string(b)) != "restored" {
		t.Fatalf("the on_rollback hook did not run: %v", err)
	}
	recs := l.stop()
	var blamed []loadRecord
	for _, r := range failures(recs) {
		ok := false
		for _, w := range windows {
			if r.start.Before(w.from) || r.start.After(w.to) {
				continue
			}
			switch {
			case w.allow5x && r.status == 500 && r.version == w.version:
				ok = true // green's own answer
			case w.dies && r.status == 502:
				ok = true // in flight to an instance as it died
			}
		}
		if !ok {
			blamed = append(blamed, r)
		}
	}
	if len(blamed) > 0 {
		t.Fatalf("%d requests failed beyond what the faulty green returned: %s", len(blamed), summary(blamed))
	}
	t.Logf("%s; failures were all green's own: %s", summary(recs), summary(failures(recs)))
}
