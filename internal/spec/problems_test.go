package spec

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// base is a valid spec that problem cases extend.
const base = "app: shop\nprocess:\n  command: [./shop]\n"

// problemCases holds one broken spec per rule. want is a part of the
// message the case is about; the full report is in testdata/problems.golden.
var problemCases = []struct {
	name, yaml, want string
}{
	// The file as a whole.
	{"empty file", "", "the file is empty"},
	{"only a comment", "# nothing\n", "the file is empty"},
	{"not yaml", "app: [shop\n", "bad YAML"},
	{"tab indent", "app: shop\nprocess:\n\tcommand: [x]\n", "bad YAML"},
	{"top level list", "- app: shop\n", "want a mapping of keys, got a list"},
	{"top level string", "shop\n", "want a mapping of keys, got the string"},
	{"two documents", base + "---\n---\napp: other\n", "one YAML document"},
	{"anchor under unknown key", "defaults: &d {instances: 2}\n" + base, "unknown key"},
	{"too many problems", base + "params: [" + strings.Repeat("x, ", 60) + "x]\n", "and 11 more problems"},
	{"merge into process", "app: shop\nprocess:\n  <<: {instances: 2}\n  command: [x]\n", "merge keys (<<) are not supported"},
	{"alias bomb", aliasBomb(), "too many values"},
	{"nested alias bomb", nestedAliasBomb(), "counting each use of an alias"},
	{"x- section bomb", base + "x-pad: [" + strings.Repeat("a, ", MaxNodes) + "a]\n", "x- sections included"},
	{"file too large", base + "# " + strings.Repeat("x", MaxBytes) + "\n", "a spec may be at most 262144 bytes (256 KiB)"},

	// Keys and types.
	{"unknown key with suggestion", base + "platfrom: process\n", `did you mean "platform"`},
	{"unknown key camel case", base + "  stopTimeout: 5s\n", `did you mean "stop_timeout"`},
	{"unknown key far from any", base + "zzz: 1\n", "unknown key"},
	{"unknown hook event", base + "hooks:\n  before_instal: []\n", `did you mean "before_install"`},
	{"duplicate key", base + "app: other\n", "duplicate key (first at line 1)"},
	{"duplicate env", base + "  env: {A: x, A: y}\n", "duplicate key"},
	{"non-scalar key", base + "? [a]\n: 1\n", "want a plain key"},
	{"string got list", "app: [shop]\nprocess:\n  command: [x]\n", "want a string, got a list"},
	{"list got string", "app: shop\nprocess:\n  command: ./shop --flag\n", `want a list, got the string "./shop --flag"`},
	{"section got string", base + "health: fast\n", "want a mapping of keys"},
	{"int got string", base + "  instances: two\n", `want a whole number, got the string "two"`},
	{"int got float", base + "strategy:\n  steps: [{weight: 10.5}, {weight: 100}]\n", "want a whole number, got the number 10.5"},
	{"bool got yes", base + "router:\n  sticky: yes\n", `want true or false, got the string "yes"`},
	{"float got string", base + "checks:\n  rules: [{error_rate: {max: high}}]\n", "want a number"},
	{"float nan", base + "checks:\n  rules: [{error_rate: {max: .nan}}]\n", "want a finite number"},
	{"env value list", base + "  env: {A: [1]}\n", "want a string, got a list"},
	{"env not mapping", base + "  env: [A=1]\n", "want a mapping of names to values"},

	// Durations.
	{"duration without unit", base + "  stop_timeout: 30\n", "want a duration like 30s, 5m or 1h30m, got the number 30"},
	{"duration words", base + "  stop_timeout: 5 minutes\n", `bad duration "5 minutes"`},
	{"duration negative", base + "bake: -5s\n", "must not be negative"},
	{"duration zero", base + "  stop_timeout: 0s\n", "must be longer than 0s"},

	// app and platform.
	{"shell-style $PORT", "app: shop\nprocess:\n  command: [./shop, --port, $PORT]\n", `"$PORT" is not expanded: the command is not run by a shell; write ${PORT}`},
	{"app missing", "process:\n  command: [x]\n", "app: is required"},
	{"app upper case", "app: Shop\nprocess:\n  command: [x]\n", `bad app name "Shop"`},
	{"app underscore", "app: my_shop\nprocess:\n  command: [x]\n", "bad app name"},
	{"app leading hyphen", "app: -shop\nprocess:\n  command: [x]\n", "bad app name"},
	{"app too long", "app: " + strings.Repeat("a", 64) + "\nprocess:\n  command: [x]\n", "bad app name"},
	{"platform docker", base + "platform: docker\n", `platform "docker" is not supported yet`},
	{"platform kubernetes section", base + "kubernetes: {namespace: x}\n", "platform kubernetes is not supported yet"},
	{"platform unknown", base + "platform: proces\n", `unknown platform "proces" (did you mean "process"?)`},
	{"run_as with a space", base + "run_as: www data\n", `bad user "www data"`},
	{"run_as too long", base + "run_as: " + strings.Repeat("u", 33) + "\n", "bad user"},

	// process.
	{"command missing", "app: shop\n", "process.command: is required"},
	{"command empty list", "app: shop\nprocess:\n  command: []\n", "process.command: is required"},
	{"command empty program", "app: shop\nprocess:\n  command: [\"\", x]\n", "the program name is empty"},
	{"command unclosed variable", "app: shop\nprocess:\n  command: [x, \"127.0.0.1:${PORT\"]\n", "unclosed ${"},
	{"command bad variable", "app: shop\nprocess:\n  command: [x, \"${1X}\"]\n", `bad variable name "1X"`},
	{"dir absolute", base + "  dir: /srv/shop\n", "must be a path inside the bundle"},
	{"dir escapes", base + "  dir: a/../../b\n", "must be a path inside the bundle"},
	{"instances zero", base + "  instances: 0\n", "must be between 1 and 100, got 0"},
	{"instances too many", base + "  instances: 1000\n", "must be between 1 and 100, got 1000"},
	{"env bad name", base + "  env: {\"A-B\": x}\n", `bad env name "A-B"`},
	{"env PORT", base + "  env: {PORT: \"80\"}\n", "PORT is set by bluegreen"},
	{"env reserved prefix", base + "  env: {BG_X: y}\n", "reserved for bluegreen"},
	{"env bad template", base + "  env: {A: \"${\"}\n", "unclosed ${"},
	{"signal without SIG", base + "  stop_signal: TERM\n", `did you mean "SIGTERM"`},
	{"signal typo", base + "  stop_signal: SIGTREM\n", `did you mean "SIGTERM"`},
	{"signal kill", base + "  stop_signal: SIGKILL\n", "SIGKILL cannot be caught"},
	{"signal unknown", base + "  stop_signal: SIGFOO\n", `bad signal name "SIGFOO"`},

	// router.
	{"listener without port", base + "router:\n  production: \"8080\"\n", "want host:port"},
	{"listener port zero", base + "router:\n  production: 127.0.0.1:0\n", "want 1 to 65535"},
	{"listener port too big", base + "router:\n  production: 127.0.0.1:99999\n", "want 1 to 65535"},
	{"listener bad host", base + "router:\n  production: \"bad host:80\"\n", `bad host "bad host"`},
	{"listener wildcard name", base + "router:\n  production: \"*.example.com:80\"\n", `bad host "*.example.com"`},
	{"listeners equal", base + "router:\n  production: 127.0.0.1:9000\n  test: 127.0.0.1:9000\n", "must differ"},
	{"listeners wildcard overlap", base + "router:\n  production: \":9000\"\n  test: 127.0.0.1:9000\n", "must differ"},
	{"listener default clash", base + "router:\n  production: 127.0.0.1:8081\n", "must differ"},
	{"host bad", base + "router:\n  hosts: [\"shop example\"]\n", "bad host name"},
	{"host duplicate", base + "router:\n  hosts: [a.example, A.example]\n", "listed twice"},
	{"preview header bad", base + "router:\n  preview_header: \"X Fleet\"\n", "bad header name"},

	// health.
	{"health path relative", base + "health:\n  path: healthz\n", "starting with /"},
	{"health interval zero", base + "health:\n  interval: 0s\n", "must be longer than 0s"},
	{"health interval below the router's", base + "health:\n  interval: 5ms\n  timeout: 5ms\n", "shorter than 10ms"},
	{"health timeout above interval", base + "health:\n  interval: 1s\n  timeout: 2s\n", "longer than health.interval"},
	{"health threshold zero", base + "health:\n  healthy_threshold: 0\n  unhealthy_threshold: 0\n", "must be at least 1, got 0"},
	{"health startup zero", base + "health:\n  startup_timeout: 0s\n", "must be longer than 0s"},

	// hooks.
	{"hook without run", base + "hooks:\n  before_install: [{timeout: 1m}]\n", "run: is required"},
	{"hook unknown field", base + "hooks:\n  before_install: [{command: x}]\n", "unknown key"},
	{"hook timeout zero", base + "hooks:\n  on_rollback: [{run: x, timeout: 0s}]\n", "must be longer than 0s"},
	{"hook list got mapping", base + "hooks:\n  on_rollback: {run: x}\n", "want a list, got a mapping"},

	// strategy.
	{"preset and steps", base + "strategy:\n  preset: AllAtOnce\n  steps: [{weight: 100}]\n", "set preset or steps, not both"},
	{"preset unknown", base + "strategy:\n  preset: Canary10Percent5Minuts\n", "did you mean"},
	{"preset lower case", base + "strategy:\n  preset: canary10percent5minutes\n", `did you mean "Canary10Percent5Minutes"`},
	{"preset unknown far", base + "strategy:\n  preset: Rolling\n", "unknown preset"},
	{"preset zero percent", base + "strategy:\n  preset: Canary0Percent5Minutes\n", "between 1 and 99"},
	{"preset zero minutes", base + "strategy:\n  preset: Linear10PercentEvery0Minutes\n", "between 1 and 1440 minutes"},
	{"weight above 100", base + "strategy:\n  steps: [{weight: 101}]\n", "weight must be between 0 and 100, got 101"},
	{"weight negative", base + "strategy:\n  steps: [{weight: -1}, {weight: 100}]\n", "got -1"},
	{"weight zero", base + "strategy:\n  steps: [{weight: 0}, {weight: 100}]\n", "0 is not above the previous weight 0"},
	{"weights fall", base + "strategy:\n  steps: [{weight: 50}, {weight: 20}, {weight: 100}]\n", "weights must rise: 20 is not above the previous weight 50"},
	{"weights repeat", base + "strategy:\n  steps: [{weight: 50}, {weight: 50}, {weight: 100}]\n", "weights must rise"},
	{"last weight not 100", base + "strategy:\n  steps: [{weight: 10}, {weight: 50}]\n", "the last step must set weight 100"},
	{"last step pause", base + "strategy:\n  steps: [{weight: 10}, {pause: {}}]\n", "the last step must set weight 100"},
	{"pause after 100", base + "strategy:\n  steps: [{weight: 100, pause: 5m}]\n", "use bake for that"},
	{"empty step", base + "strategy:\n  steps: [{}, {weight: 100}]\n", "a step sets weight, pause or both"},
	{"null step", base + "strategy:\n  steps:\n    -\n    - weight: 100\n", "a step sets weight, pause or both"},
	{"pause zero", base + "strategy:\n  steps: [{weight: 10, pause: 0s}, {weight: 100}]\n", "a pause must be longer than 0s"},
	{"pause mapping with keys", base + "strategy:\n  steps: [{pause: {until: promote}}, {weight: 100}]\n", "or {} to wait for promote"},
	{"pause list", base + "strategy:\n  steps: [{pause: []}, {weight: 100}]\n", "want a duration"},
	{"step unknown key", base + "strategy:\n  steps: [{weigth: 100}]\n", `did you mean "weight"`},
	{"approval bad", base + "strategy:\n  approval: manul\n", `must be auto or manual, got "manul" (did you mean "manual"?)`},
	{"approval timeout zero", base + "strategy:\n  approval_timeout: 0s\n", "must be longer than 0s"},
	{"on approval timeout bad", base + "strategy:\n  on_approval_timeout: abort\n", "must be rollback or continue"},
	{"progress deadline zero", base + "strategy:\n  progress_deadline: 0s\n", "must be longer than 0s"},

	// checks.
	{"checks interval zero", base + "checks:\n  interval: 0s\n", "must be longer than 0s"},
	{"failure limit zero", base + "checks:\n  failure_limit: 0\n", "must be at least 1, got 0"},
	{"min requests negative", base + "checks:\n  min_requests: -1\n", "must be at least 0, got -1"},
	{"rule empty", base + "checks:\n  rules: [{}]\n", "a rule needs one of"},
	{"rule two kinds", base + "checks:\n  rules: [{error_rate: {max: 0.1}, latency_p99: {max: 1s}}]\n", "a rule has one kind, found error_rate and latency_p99"},
	{"rule unknown kind", base + "checks:\n  rules: [{latency_p90: {max: 1s}}]\n", `did you mean "latency_p50"`},
	{"error rate above 1", base + "checks:\n  rules: [{error_rate: {max: 2}}]\n", "must be between 0 and 1"},
	{"error rate without limit", base + "checks:\n  rules: [{error_rate: {}}]\n", "set max"},
	{"error rate ratio zero", base + "checks:\n  rules: [{error_rate: {max_vs_blue: 0}}]\n", "must be a ratio above 0"},
	{"latency max zero", base + "checks:\n  rules: [{latency_p99: {max: 0s}}]\n", "must be longer than 0s"},
	{"latency max number", base + "checks:\n  rules: [{latency_p95: {max: 500}}]\n", "want a duration"},
	{"latency without limit", base + "checks:\n  rules: [{latency_p50: {}}]\n", "set max"},
	{"command rule without run", base + "checks:\n  rules: [{command: {timeout: 1s}}]\n", "run: is required"},
	{"webhook bad url", base + "checks:\n  rules: [{webhook: {url: \"ftp://x/check\"}}]\n", "want an http:// or https:// URL"},
	{"webhook no host", base + "checks:\n  rules: [{webhook: {url: \"http:///check\"}}]\n", "want an http:// or https:// URL"},

	// bake, retire.
	{"bake number", base + "bake: 10\n", "want a duration"},
	{"retire unknown", base + "retire:\n  keep_blu: 1h\n", `did you mean "keep_blue"`},
	{"retire keep green string", base + "retire:\n  keep_green_on_rollback: \"no\"\n", "want true or false"},

	// params.
	{"param without slash", base + "params: [DATABASE_URL]\n", "bad parameter name"},
	{"param empty segment", base + "params: [\"/shop//URL\"]\n", "bad parameter name"},
	{"param trailing slash", base + "params: [\"/shop/\"]\n", "bad parameter name"},
	{"param bad character", base + "params: [\"/shop/DB URL\"]\n", "bad parameter name"},
	{"param bad env name", base + "params: [\"/shop/db.url\"]\n", `injected as env "db.url"`},
	{"param env duplicate", base + "params: [/a/URL, /b/URL]\n", "would both set env URL"},
	{"param listed twice", base + "params: [/a/URL, /a/URL]\n", "would both set env URL"},
	{"param env clash", base + "  env: {URL: x}\nparams: [/a/URL]\n", "which process.env sets too"},
	{"param reserved", base + "params: [/a/PORT]\n", "PORT is set by bluegreen"},
	{"params string", base + "params: /a/URL\n", "want a list"},

	// Everything at once: every problem is reported, in file order.
	{"many problems", "app: Shop\nplatfrom: process\nprocess:\n  command: ./x\n  stop_timout: 5\n  stop_signal: TERM\nrouter:\n  production: 127.0.0.1:8080\n  test: 127.0.0.1:8080\nstrategy:\n  preset: AllAtOnce\n  steps: [{weight: 120}, {pause: 0s}, {weight: 10}]\nchecks:\n  failure_limit: 0\nparams: [/a/X, /b/X]\n", "platfrom"},
}

// aliasBomb repeats one alias past the decoder's node budget.
func aliasBomb() string {
	return base + "params: [&p /a/B" + strings.Repeat(", *p", nodeBudget) + "]\n"
}

// nestedAliasBomb is small as a tree (about a thousand nodes) but expands
// to fifty thousand: a list of a thousand uses of one hook, used by every
// hook event.
func nestedAliasBomb() string {
	var b strings.Builder
	b.WriteString("x-h: &h {run: ./x, timeout: 1m}\nx-l: &l [*h" + strings.Repeat(", *h", 999) + "]\n" + base + "hooks:\n")
	for _, ev := range (&Hooks{}).Events() {
		fmt.Fprintf(&b, "  %s: *l\n", ev.Name)
	}
	return b.String()
}

func TestProblems(t *testing.T) {
	var golden strings.Builder
	seen := map[string]bool{}
	for _, tc := range problemCases {
		if seen[tc.name] {
			t.Fatalf("two cases named %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), FileName)
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse = %v, want *Errors", err)
			}
			if len(errs.Problems) == 0 {
				t.Fatal("*Errors without problems")
			}
			for _, p := range errs.Problems {
				if p.File != FileName || p.Message == "" {
					t.Errorf("problem without file or message: %+v", p)
				}
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("problems:\n%s\nwant one containing %q", err, tc.want)
			}
			fmt.Fprintf(&golden, "== %s\n%s\n\n", tc.name, err)
		})
	}
	checkGolden(t, "testdata/problems.golden", golden.String())
}

// checkGolden compares got with the golden file, or rewrites it with -update.
func checkGolden(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < max(len(gl), len(wl)); i++ {
			g, w := "", ""
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs at line %d (go test -update rewrites it):\n got: %s\nwant: %s", file, i+1, g, w)
			}
		}
	}
}
