package spec

import (
	"encoding/json"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, src string) *Spec {
	t.Helper()
	s, err := Parse([]byte(src), FileName)
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return s
}

func TestParseExample(t *testing.T) {
	s, err := ParseFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.App != "shop" || s.Process.Instances != 2 || s.Process.Env["GOMAXPROCS"] != "1" {
		t.Errorf("app/process: %+v %+v", s.App, s.Process)
	}
	if s.Router.Production != "127.0.0.1:8080" || !s.Router.Sticky || s.Router.PreviewHeader != "X-Bluegreen-Fleet" {
		t.Errorf("router: %+v", s.Router)
	}
	if got := s.Hooks.BeforeInstall; len(got) != 1 || got[0].Run != "./hooks/snapshot-db.sh" || got[0].Timeout.D() != 10*time.Minute {
		t.Errorf("before_install: %+v", got)
	}
	if got := stepsString(s.Strategy.Steps); got != "10/5m 50/5m -/{} 100" {
		t.Errorf("steps = %s", got)
	}
	if s.Strategy.Approval != ApprovalManual || s.Bake.D() != 10*time.Minute || s.Retire.DrainTimeout.D() != 5*time.Minute {
		t.Errorf("strategy/bake/retire: %+v %v %+v", s.Strategy, s.Bake, s.Retire)
	}
	r := s.Checks.Rules
	if len(r) != 5 || *r[0].ErrorRate.Max != 0.01 || r[1].LatencyP99.Max.D() != 500*time.Millisecond ||
		*r[2].LatencyP99.MaxVsBlue != 1.5 || r[3].Command.Run != "./hooks/check.sh" || r[4].Webhook.Timeout.D() != 5*time.Second {
		t.Errorf("rules: %+v", r)
	}
	if strings.Join(s.Params, ",") != "/shop/DATABASE_URL,/shop/API_KEY" {
		t.Errorf("params: %v", s.Params)
	}
}

// stepsString writes steps as weight/pause, compactly, for table tests.
func stepsString(steps []Step) string {
	var parts []string
	for _, st := range steps {
		w := "-"
		if st.Weight != nil {
			w = strconv.Itoa(*st.Weight)
		}
		switch {
		case st.Pause == nil:
			parts = append(parts, w)
		case st.Pause.Indefinite:
			parts = append(parts, w+"/{}")
		default:
			parts = append(parts, w+"/"+st.Pause.Duration.String())
		}
	}
	return strings.Join(parts, " ")
}

// TestDefaults pins the effective spec of a minimal file: every default is
// visible in it.
func TestDefaults(t *testing.T) {
	src, err := os.ReadFile("testdata/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := mustParse(t, string(src)).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "testdata/minimal.effective.yaml", string(out))
}

func TestValidSpecs(t *testing.T) {
	cases := []struct {
		name, yaml string
		check      func(*Spec) bool
	}{
		{"explicit zero kept", base + "bake: 0s\nretire: {keep_blue: 0s, drain_timeout: 0s}\nchecks: {min_requests: 0}\n",
			func(s *Spec) bool {
				return s.Bake == 0 && s.Retire.KeepBlue == 0 && s.Retire.DrainTimeout == 0 && s.Checks.MinRequests == 0
			}},
		{"null leaves defaults", base + "bake:\nhealth:\nhooks:\n  on_rollback:\n",
			func(s *Spec) bool { return s.Bake.D() == DefaultBake && s.Health.Path == DefaultHealthPath }},
		{"env numbers kept as written", base + "  env: {A: 1, B: 1.50, C: true, D: 0x1F}\n",
			func(s *Spec) bool {
				e := s.Process.Env
				return e["A"] == "1" && e["B"] == "1.50" && e["C"] == "true" && e["D"] == "0x1F"
			}},
		{"aliases", "x-hook: &h {run: ./hooks/a.sh, timeout: 1m}\n" + base + "hooks:\n  before_install: [*h]\n  on_rollback: [*h, *h]\n",
			func(s *Spec) bool {
				return len(s.Hooks.OnRollback) == 2 && s.Hooks.BeforeInstall[0].Timeout.D() == time.Minute
			}},
		{"extension keys ignored", base + "x-notes: {anything: [1, 2]}\n", func(s *Spec) bool { return s.App == "shop" }},
		{"indefinite pause", base + "strategy:\n  steps: [{weight: 1}, {pause: {}}, {weight: 100}]\n",
			func(s *Spec) bool { return stepsString(s.Strategy.Steps) == "1 -/{} 100" }},
		{"weight and indefinite pause", base + "strategy:\n  steps: [{weight: 20, pause: {}}, {weight: 100}]\n",
			func(s *Spec) bool { return stepsString(s.Strategy.Steps) == "20/{} 100" }},
		{"ecs preset", base + "strategy: {preset: ECSCanary10Percent15Minutes}\n",
			func(s *Spec) bool { return stepsString(s.Strategy.Steps) == "10/15m 100" && s.Strategy.Preset == "" }},
		{"hook timeout default", base + "hooks:\n  validate_service: [{run: curl -f localhost}]\n",
			func(s *Spec) bool { return s.Hooks.ValidateService[0].Timeout.D() == DefaultHookTimeout }},
		{"rule timeout defaults", base + "checks:\n  rules: [{command: {run: x}}, {webhook: {url: \"https://h/x\"}}]\n",
			func(s *Spec) bool {
				return s.Checks.Rules[0].Command.Timeout.D() == DefaultCommandTimeout && s.Checks.Rules[1].Webhook.Timeout.D() == DefaultWebhookTimeout
			}},
		{"listeners on other hosts", base + "router: {production: \"10.0.0.1:80\", test: \"10.0.0.2:80\"}\n",
			func(s *Spec) bool { return s.Router.Test == "10.0.0.2:80" }},
		{"ipv6 listeners", base + "router: {production: \"[::1]:8080\", test: \"[::1]:8081\"}\n",
			func(s *Spec) bool { return s.Router.Production == "[::1]:8080" }},
		{"error rate zero allowed", base + "checks:\n  rules: [{error_rate: {max: 0}}]\n",
			func(s *Spec) bool { return *s.Checks.Rules[0].ErrorRate.Max == 0 }},
		{"judge defaults", base + "checks:\n  rules: [{judge: {}}]\n",
			func(s *Spec) bool {
				j := s.Checks.Rules[0].Judge
				return *j == JudgeRule{DefaultJudgeConfidence, DefaultJudgeMinSamples, DefaultJudgeMaxSlowdown, DefaultJudgeMaxErrorIncrease} &&
					s.Checks.JudgeMinSamples() == DefaultJudgeMinSamples
			}},
		{"judge as written", base + "checks:\n  rules:\n    - judge: { confidence: 0.999, min_samples: 200, max_slowdown: 1, max_error_increase: 0 }\n",
			func(s *Spec) bool {
				return *s.Checks.Rules[0].Judge == JudgeRule{0.999, 200, 1, 0}
			}},
		{"dollar escapes", "app: shop\nprocess:\n  command: [sh, -c, \"echo $$HOME $1 ${PORT}\"]\n",
			func(s *Spec) bool { return s.Process.Command[2] == "echo $$HOME $1 ${PORT}" }},
		{"single segment param", base + "params: [/TOKEN, /shop/db.v1/URL]\n", func(s *Spec) bool { return len(s.Params) == 2 }},
		{"trailing document marker", "---\n" + base + "---\n", func(s *Spec) bool { return s.App == "shop" }},
		{"crlf line ends", strings.ReplaceAll(base, "\n", "\r\n"), func(s *Spec) bool { return s.App == "shop" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if s := mustParse(t, tc.yaml); !tc.check(s) {
				out, _ := s.Marshal()
				t.Errorf("unexpected spec:\n%s", out)
			}
		})
	}
}

func TestPresets(t *testing.T) {
	cases := map[string]string{
		"AllAtOnce":                                         "100",
		"ECSAllAtOnce":                                      "100",
		"CodeDeployDefault.ECSAllAtOnce":                    "100",
		"CodeDeployDefault.LambdaAllAtOnce":                 "100",
		"Canary10Percent5Minutes":                           "10/5m 100",
		"Canary10Percent10Minutes":                          "10/10m 100",
		"Canary10Percent15Minutes":                          "10/15m 100",
		"Canary10Percent30Minutes":                          "10/30m 100",
		"ECSCanary10Percent5Minutes":                        "10/5m 100",
		"CodeDeployDefault.ECSCanary10Percent15Minutes":     "10/15m 100",
		"LambdaCanary10Percent30Minutes":                    "10/30m 100",
		"Canary25Percent90Minutes":                          "25/1h30m 100",
		"Linear10PercentEvery1Minute":                       "10/1m 20/1m 30/1m 40/1m 50/1m 60/1m 70/1m 80/1m 90/1m 100",
		"Linear10PercentEvery2Minutes":                      "10/2m 20/2m 30/2m 40/2m 50/2m 60/2m 70/2m 80/2m 90/2m 100",
		"Linear10PercentEvery3Minutes":                      "10/3m 20/3m 30/3m 40/3m 50/3m 60/3m 70/3m 80/3m 90/3m 100",
		"Linear10PercentEvery10Minutes":                     "10/10m 20/10m 30/10m 40/10m 50/10m 60/10m 70/10m 80/10m 90/10m 100",
		"ECSLinear10PercentEvery1Minutes":                   "10/1m 20/1m 30/1m 40/1m 50/1m 60/1m 70/1m 80/1m 90/1m 100",
		"CodeDeployDefault.ECSLinear10PercentEvery3Minutes": "10/3m 20/3m 30/3m 40/3m 50/3m 60/3m 70/3m 80/3m 90/3m 100",
		"Linear30PercentEvery1Minute":                       "30/1m 60/1m 90/1m 100",
		"Linear50PercentEvery1Minute":                       "50/1m 100",
	}
	for name, want := range cases {
		steps, err := ExpandPreset(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := stepsString(steps); got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
		c := &collector{}
		if validateSteps(c, steps); c.err() != nil {
			t.Errorf("%s expands to invalid steps: %v", name, c.err())
		}
	}
	for _, name := range Presets {
		if _, ok := cases[name]; !ok {
			t.Errorf("preset %s has no test", name)
		}
	}
}

// TestRoundTrip parses, marshals and parses again: the effective spec must
// not change, in YAML or in JSON.
func TestRoundTrip(t *testing.T) {
	inputs := []string{"testdata/example.yaml", "testdata/minimal.yaml"}
	for _, file := range inputs {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, src)
	}
	roundTrip(t, []byte(base+"strategy: {preset: Linear10PercentEvery1Minute}\nchecks:\n  rules: [{latency_p50: {max: 1h1m1s, max_vs_blue: 2}}]\n"))
	roundTrip(t, []byte(base+"checks:\n  rules: [{judge: {confidence: 0.95, max_error_increase: 0}}]\n"))
}

func roundTrip(t *testing.T, src []byte) {
	t.Helper()
	first, err := Parse(src, "first.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := first.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	second, err := Parse(out, "second.yaml")
	if err != nil {
		t.Fatalf("parsing the marshaled spec:\n%v\n%s", err, out)
	}
	if !reflect.DeepEqual(exported(first), exported(second)) {
		t.Fatalf("YAML round trip changed the spec:\n%s", out)
	}
	js, err := json.Marshal(first)
	if err != nil {
		t.Fatal(err)
	}
	var third Spec
	if err := json.Unmarshal(js, &third); err != nil {
		t.Fatalf("JSON: %v\n%s", err, js)
	}
	if !reflect.DeepEqual(exported(first), exported(&third)) {
		t.Fatalf("JSON round trip changed the spec:\n%s", js)
	}
}

// exported drops what Parse keeps about the file, leaving the spec itself.
func exported(s *Spec) Spec {
	c := *s
	c.file, c.pos, c.given, c.Strategy.expandedFrom = "", nil, nil, ""
	return c
}

func TestDurationString(t *testing.T) {
	cases := map[time.Duration]string{
		0: "0s", 500 * time.Millisecond: "500ms", 30 * time.Second: "30s", 5 * time.Minute: "5m",
		time.Hour: "1h", 90 * time.Minute: "1h30m", time.Hour + time.Second: "1h0m1s", 90 * time.Second: "1m30s",
	}
	for d, want := range cases {
		if got := Duration(d).String(); got != want {
			t.Errorf("%v: got %s, want %s", time.Duration(d), got, want)
		}
		if back, err := parseDuration(want); err != nil || back.D() != d {
			t.Errorf("parse %s = %v, %v", want, back, err)
		}
	}
}

// TestBuiltInGo covers specs made without a file, as other packages' tests
// make them: zero values take defaults and problems carry no position.
func TestBuiltInGo(t *testing.T) {
	s := &Spec{App: "shop", Process: &Process{Command: []string{"./shop"}}}
	s.ApplyDefaults()
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if s.Process.Instances != DefaultInstances || s.Bake.D() != DefaultBake || stepsString(s.Strategy.Steps) != "100" {
		t.Errorf("defaults not applied: %+v", s)
	}
	w := 120
	s.Strategy.Steps = []Step{{Weight: &w}}
	err := s.Validate()
	want := "strategy.steps[0].weight: weight must be between 0 and 100, got 120"
	if err == nil || err.Error() != want {
		t.Fatalf("Validate = %v, want %q", err, want)
	}
}

func TestPauseJSON(t *testing.T) {
	w := 10
	steps := []Step{{Weight: &w, Pause: &Pause{Duration: Duration(90 * time.Second)}}, {Pause: &Pause{Indefinite: true}}}
	js, err := json.Marshal(steps)
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"weight":10,"pause":"1m30s"},{"pause":{}}]`; string(js) != want {
		t.Fatalf("JSON = %s, want %s", js, want)
	}
	var back []Step
	if err := json.Unmarshal(js, &back); err != nil || !reflect.DeepEqual(back, steps) {
		t.Fatalf("back = %+v, %v", back, err)
	}
}
