package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"bluegreen/internal/api"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func ev(sec int, kind, msg string, fields map[string]any) api.Event {
	return api.Event{Time: t0.Add(time.Duration(sec) * time.Second), DeploymentID: "d-1", App: "shop", Kind: kind, Message: msg, Fields: fields}
}

// progressOf replays events as a watcher would.
func progressOf(t *testing.T, evs ...api.Event) *progress {
	t.Helper()
	det, _ := json.Marshal(map[string]any{"weight": 0})
	p := newProgress(api.Deployment{ID: "d-1", App: "shop", FromRevision: 6, ToRevision: 7, Phase: "Pending", Details: det}, 3)
	for _, e := range evs {
		p.apply(e)
	}
	return p
}

var shifting = []api.Event{
	ev(0, "phase", "provisioning 2 instances of revision 7 as blue", map[string]any{"phase": "Provisioning"}),
	ev(1, "phase", "waiting for every green instance to pass its health check", map[string]any{"phase": "Validating"}),
	ev(2, "phase", "the test listener serves green", map[string]any{"phase": "TestTraffic"}),
	ev(3, "phase", "shifting production traffic to green", map[string]any{"phase": "Shifting"}),
	ev(3, "traffic", "green 0% → 20% (step 1 of 3)", map[string]any{"phase": "Shifting", "from": 0.0, "weight": 20.0, "step": 0.0}),
	ev(8, "check", "checks pass over 5s: green 120 requests, 0.00% errors, p99 12ms", map[string]any{"phase": "Shifting", "verdict": "pass",
		"green_requests": 120.0, "green_error_rate": 0.0, "green_p99_seconds": 0.012, "blue_requests": 480.0, "blue_error_rate": 0.002, "blue_p99_seconds": 0.0113,
		"failures": 0.0, "failure_limit": 3.0}),
}

func TestFrameWhileShifting(t *testing.T) {
	got := strings.Join(frame(progressOf(t, shifting...), time.UTC), "\n")
	want := `deployment d-1 of shop: revision 6 → 7
  ✓ Provisioning
  ✓ Validating
  ✓ TestTraffic
  ● Shifting  step 1 of 3
  ○ Baking
  ○ Retiring
  ○ Succeeded
  blue ████████░░  80% | green ██░░░░░░░░  20%
  check pass: green 120 req, 0.00% errors, p99 12ms | blue 480 req, 0.20% errors, p99 11ms
  12:00:02 the test listener serves green
  12:00:03 shifting production traffic to green
  12:00:03 green 0% → 20% (step 1 of 3)
  12:00:08 checks pass over 5s: green 120 requests, 0.00% errors, p99 12ms`
	if got != want {
		t.Errorf("frame:\n%s\nwant:\n%s", got, want)
	}
}

func TestFrameRolledBack(t *testing.T) {
	evs := append(shifting[:5:5],
		ev(9, "hook.failed", "hook before_allow_traffic[0] failed (exit 3)\nsmoke test: 500", map[string]any{"exit_code": 3.0}),
		ev(9, "phase", "rolling back: hook before_allow_traffic[0] failed", map[string]any{"phase": "RollingBack", "from": "Shifting"}),
		ev(11, "phase", "rolled back to revision 6", map[string]any{"phase": "RolledBack"}),
	)
	p := progressOf(t, evs...)
	if !p.done() || p.Outcome != "rolled_back" {
		t.Fatalf("outcome %q", p.Outcome)
	}
	got := strings.Join(frame(p, time.UTC), "\n")
	want := `deployment d-1 of shop: revision 6 → 7
  ✓ Provisioning
  ✓ Validating
  ✓ TestTraffic
  ✓ Shifting
  ✓ RollingBack
  ✗ RolledBack
  blue ██████████ 100% | green ░░░░░░░░░░   0%
  12:00:03 green 0% → 20% (step 1 of 3)
  12:00:09 hook before_allow_traffic[0] failed (exit 3)
           smoke test: 500
  12:00:09 rolling back: hook before_allow_traffic[0] failed
  12:00:11 rolled back to revision 6
deployment d-1 rolled back: hook before_allow_traffic[0] failed`
	if got != want {
		t.Errorf("frame:\n%s\nwant:\n%s", got, want)
	}
}

func TestPlainLines(t *testing.T) {
	p := progressOf(t)
	var lines []string
	for _, e := range shifting[3:5] {
		p.apply(e)
		lines = append(lines, plainLine(e, p.Phase, time.UTC))
	}
	want := "12:00:03 Shifting         shifting production traffic to green\n" +
		"12:00:03 Shifting         green 0% → 20% (step 1 of 3)"
	if got := strings.Join(lines, "\n"); got != want {
		t.Errorf("plain lines:\n%s\nwant:\n%s", got, want)
	}
}

func TestTrafficBar(t *testing.T) {
	for _, tc := range []struct {
		blue, green int
		want        string
	}{
		{100, 0, "blue ██████████ 100% | green ░░░░░░░░░░   0%"},
		{99, 1, "blue █████████░  99% | green █░░░░░░░░░   1%"},
		{50, 50, "blue █████░░░░░  50% | green █████░░░░░  50%"},
		{0, 100, "blue ░░░░░░░░░░   0% | green ██████████ 100%"},
	} {
		if got := trafficBar(tc.blue, tc.green, 10); got != tc.want {
			t.Errorf("trafficBar(%d, %d) = %q, want %q", tc.blue, tc.green, got, tc.want)
		}
	}
}

func TestRedraw(t *testing.T) {
	if got, want := redraw(0, []string{"a", "b"}), "\r\x1b[2Ka\n\r\x1b[2Kb\n\x1b[J"; got != want {
		t.Errorf("first frame %q, want %q", got, want)
	}
	if got, want := redraw(2, []string{"c"}), "\x1b[2A\r\x1b[2Kc\n\x1b[J"; got != want {
		t.Errorf("next frame %q, want %q", got, want)
	}
}

func TestRenderStatus(t *testing.T) {
	yes := true
	next := t0.Add(54*time.Minute + 10*time.Second)
	st := api.Status{
		App: api.App{Name: "shop", LiveRevision: 7, LiveFleet: "blue", LiveInstances: 1,
			Deployment: &api.Deployment{ID: "d-1", App: "shop", FromRevision: 6, ToRevision: 7, Phase: "Retiring"}},
		Window:   "10s",
		Progress: &api.Progress{Step: 3, Steps: 3, Weight: 100, Next: "blue retires", NextAt: &next},
		Fleets: []api.FleetStatus{
			// The slots are the other way round: people read roles only.
			{Name: "blue", Role: "green", Revision: 7, Live: true, Weight: 100, Healthy: 1, Targets: 1, Requests: 1200, RequestRate: 120, ErrorRate: 0.001, P99Seconds: 0.0123,
				Instances: []api.InstanceStatus{{Instance: api.Instance{ID: "shop-7-blue-0", Revision: 7, Fleet: "blue", Address: "127.0.0.1:40001", State: "running"}, Healthy: &yes}}},
			{Name: "green", Role: "blue", Revision: 6, Weight: 0, Healthy: 1, Targets: 1,
				Instances: []api.InstanceStatus{{Instance: api.Instance{ID: "shop-6-green-0", Revision: 6, Fleet: "green", Address: "127.0.0.1:40002", State: "running"}, Healthy: &yes}}},
		},
	}
	want := `shop: revision 7 live (1 instance)
deployment d-1: revision 6 → 7, Retiring
  next: blue retires in 54m
traffic: blue ░░░░░░░░░░   0% | green ██████████ 100%
  FLEET  REVISION     REQ/S   ERRORS      P99  HEALTHY  
  blue   6              0.0    0.00%        -      1/1  warm, retiring
  green  7            120.0    0.10%     12ms      1/1  live
instances:
  shop-7-blue-0            green  7        127.0.0.1:40001       running  healthy
  shop-6-green-0           blue   6        127.0.0.1:40002       running  healthy
`
	if got := renderStatus(st, t0); got != want {
		t.Errorf("status:\n%s\nwant:\n%s", got, want)
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		1500 * time.Millisecond:         "2s",
		4*time.Minute + 10*time.Second:  "4m10s",
		54*time.Minute + 10*time.Second: "54m",
		65 * time.Minute:                "1h5m",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

// With nothing in progress, a failed last deployment is shown with its
// whole reason.
func TestRenderStatusAfterAFailure(t *testing.T) {
	st := api.Status{
		App: api.App{Name: "web"},
		LastDeployment: &api.Deployment{ID: "d-9", App: "web", ToRevision: 1, Outcome: "rolled_back",
			Reason: "green instance web-1-green-0 exited with code 1\n    its last output:\n      nginx: [emerg] unknown directive \"lisen\""},
	}
	want := `web: nothing live yet
last deployment d-9 (revision 1) rolled back: green instance web-1-green-0 exited with code 1
      its last output:
        nginx: [emerg] unknown directive "lisen"
`
	if got := renderStatus(st, t0); got != want {
		t.Errorf("status:\n%s\nwant:\n%s", got, want)
	}
}
