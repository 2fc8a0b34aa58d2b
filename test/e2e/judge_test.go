package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/testwait"
)

// checkResult is one rule's verdict as a check event records it.
type checkResult struct {
	Rule    string  `json:"rule"`
	Verdict string  `json:"verdict"`
	Green   float64 `json:"green"`
	Blue    float64 `json:"blue"`
	Limit   float64 `json:"limit"`
	Detail  string  `json:"detail"`
	Judge   *struct {
		Test         string  `json:"test"`
		Statistic    float64 `json:"statistic"`
		PValue       float64 `json:"p_value"`
		Alpha        float64 `json:"alpha"`
		Significant  bool    `json:"significant"`
		Effect       float64 `json:"effect"`
		MaxEffect    float64 `json:"max_effect"`
		GreenSamples int     `json:"green_samples"`
		BlueSamples  int     `json:"blue_samples"`
		Baseline     bool    `json:"baseline"`
	} `json:"judge"`
}

// checkEval is one check evaluation of a deployment.
type checkEval struct {
	verdict string
	weight  int
	results map[string]checkResult
}

func checkEvals(t *testing.T, evs []api.Event) []checkEval {
	t.Helper()
	var out []checkEval
	for _, ev := range evs {
		if ev.Kind != "check" {
			continue
		}
		raw, _ := json.Marshal(ev.Fields["results"])
		var rs []checkResult
		if err := json.Unmarshal(raw, &rs); err != nil {
			t.Fatalf("check event %q: results: %v", ev.Message, err)
		}
		c := checkEval{results: map[string]checkResult{}}
		c.verdict, _ = ev.Fields["verdict"].(string)
		w, _ := ev.Fields["weight"].(float64)
		c.weight = int(w)
		for _, r := range rs {
			c.results[r.Rule] = r
		}
		out = append(out, c)
	}
	return out
}

// judgeChecks is a spec's checks with the judge: every interval of 3 s,
// two failures in a row roll back.
const judgeChecks = `checks:
  interval: 3s
  failure_limit: 2
  min_requests: 50
  rules:
    - judge: { confidence: 0.99, min_samples: 100, max_slowdown: 1.1, max_error_increase: 0.01 }
`

// TestJudgeRollsBackASlowerGreen deploys a green 30 % slower than blue
// (23.4 ms against 18 ms per request, each inside one bucket of the
// router's histogram) at 50 % of 200 requests a second: the judge compares
// the two fleets over the same seconds and rolls back after failure_limit
// failed evaluations, none passing, with its numbers recorded.
func TestJudgeRollsBackASlowerGreen(t *testing.T) {
	e := newDeployEnv(t)
	e.deployLive("v1", e.spec(specParts{env: "{ HELLO_LATENCY: 18ms }", extra: quick}))
	l := startLoad(t, "http://"+e.prod+"/", 200)
	spec := e.spec(specParts{env: "{ HELLO_LATENCY: 23400us }", extra: quick +
		"strategy:\n  steps:\n    - { weight: 50, pause: 1m }\n    - { weight: 100 }\n" + judgeChecks})
	d := e.deploy("v2", spec, nil)
	d = e.waitEnd(d.ID, 90*time.Second)
	if d.Outcome != "rolled_back" || !strings.Contains(d.Reason, "judge.latency") {
		t.Fatalf("outcome %s (%s), want rolled_back by judge.latency\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	// Each interval holds 200 to 300 requests of each fleet, so every
	// evaluation should conclude; one or two may not on a machine busy
	// enough to hold the load back, and none may pass.
	evals := checkEvals(t, e.events(d.ID))
	if len(evals) > 4 {
		t.Errorf("%d check evaluations before the rollback, want failure_limit 2 (and at most 2 inconclusive)\n%s", len(evals), e.eventLog(d.ID))
	}
	t.Logf("rolled back after %d evaluations", len(evals))
	failed := 0
	for i, c := range evals {
		r := c.results["judge.latency"]
		j := r.Judge
		if r.Verdict == "inconclusive" {
			t.Logf("evaluation %d: inconclusive: %s", i+1, r.Detail)
			continue
		}
		if c.verdict != "fail" || r.Verdict != "fail" || c.weight != 50 || j == nil {
			t.Fatalf("evaluation %d: %s at %d%%, judge.latency %+v", i+1, c.verdict, c.weight, r)
		}
		failed++
		if j.Test != "mann_whitney_u" || !j.Significant || j.PValue >= j.Alpha || j.Alpha != 0.01 || j.Effect <= 1.1 ||
			j.GreenSamples < 100 || j.BlueSamples < 100 || j.Baseline || r.Green <= r.Blue || r.Limit <= r.Blue {
			t.Errorf("evaluation %d: judge.latency numbers %+v %+v", i+1, r, *j)
		}
		t.Logf("evaluation %d: %s", i+1, r.Detail)
		if er := c.results["judge.error_rate"]; er.Verdict != "pass" || er.Judge == nil {
			t.Errorf("evaluation %d: judge.error_rate %+v", i+1, er)
		}
	}
	if failed != 2 {
		t.Errorf("%d failed evaluations, want failure_limit 2", failed)
	}
	recs := l.stop()
	if f := failures(recs); len(f) > 0 {
		t.Errorf("%d requests failed: %s", len(f), summary(f))
	}
}

// TestJudgePassesAnIdenticalGreen deploys a green that is blue again, all
// at once: blue has no traffic during the bake, so the judge and the
// relative rules compare green with blue's baseline, measured just before
// the switch, and conclude (they were inconclusive before the baseline was
// taken then). The deployment succeeds once an evaluation at 100 % passed;
// every evaluation of the bake is conclusive.
func TestJudgePassesAnIdenticalGreen(t *testing.T) {
	e := newDeployEnv(t)
	lat := "{ HELLO_LATENCY: 18ms }"
	e.deployLive("v1", e.spec(specParts{env: lat, extra: quick}))
	l := startLoad(t, "http://"+e.prod+"/", 200)
	// Blue serves the load for a full check interval before the switch,
	// so that its baseline has enough requests.
	started := time.Now()
	testwait.For(t, 10*time.Second, "3 s of load on blue", func() bool { return time.Since(started) > 3*time.Second })
	// Three failures in a row to roll back: a burst of other work on the
	// machine during the bake slows green and not the baseline, and this
	// test is about the baseline being used, not about the machine.
	checks := strings.Replace(judgeChecks, "failure_limit: 2", "failure_limit: 3", 1)
	bake := "bake: 7s\nretire:\n  keep_blue: 0s\n  drain_timeout: 2s\nstrategy: { preset: AllAtOnce }\n" + checks +
		"    - latency_p50: { max_vs_blue: 2 }\n    - error_rate: { max_vs_blue: 2 }\n"
	d := e.deploy("v2", e.spec(specParts{env: lat, extra: bake}), nil)
	d = e.waitEnd(d.ID, 90*time.Second)
	if d.Outcome != "succeeded" {
		t.Fatalf("outcome %s (%s), want succeeded\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	var baked, passed int
	for i, c := range checkEvals(t, e.events(d.ID)) {
		if c.weight != 100 {
			continue
		}
		baked++
		if c.verdict == "pass" {
			passed++
		}
		for _, rule := range []string{"judge.latency", "judge.error_rate", "latency_p50.max_vs_blue", "error_rate.max_vs_blue"} {
			r := c.results[rule]
			if r.Verdict == "inconclusive" || !strings.Contains(r.Detail, "blue's baseline") {
				t.Errorf("evaluation %d: %s %s (%s), want a verdict against blue's baseline", i+1, rule, r.Verdict, r.Detail)
			}
		}
		j := c.results["judge.latency"].Judge
		if j == nil || !j.Baseline || j.BlueSamples < 100 || j.GreenSamples < 100 {
			t.Errorf("evaluation %d: judge.latency numbers %+v", i+1, j)
		}
		t.Logf("evaluation %d: %s", i+1, c.results["judge.latency"].Detail)
	}
	if passed == 0 {
		t.Fatalf("%d check evaluations during the bake, none passed\n%s", baked, e.eventLog(d.ID))
	}
	recs := l.stop()
	if f := failures(recs); len(f) > 0 {
		t.Errorf("%d requests failed: %s", len(f), summary(f))
	}
}
