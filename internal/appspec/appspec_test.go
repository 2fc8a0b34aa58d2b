package appspec

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

func TestParseSample(t *testing.T) {
	a, err := ParseFile("../../examples/codedeploy/appspec.yml")
	if err != nil {
		t.Fatal(err)
	}
	if a.Version != "0.0" || a.OS != "linux" || a.FileExistsBehavior != "OVERWRITE" {
		t.Errorf("version %q, os %q, file_exists_behavior %q", a.Version, a.OS, a.FileExistsBehavior)
	}
	if len(a.Files) != 1 || a.Files[0] != (File{Source: "/", Destination: "/var/www/shop", Line: 8}) {
		t.Errorf("files: %+v", a.Files)
	}
	if len(a.Permissions) != 2 || a.Permissions[0].Owner != "www-data" || a.Permissions[0].Mode != "755" ||
		a.Permissions[1].Pattern != "*.sh" || strings.Join(a.Permissions[1].Type, ",") != "file" {
		t.Errorf("permissions: %+v", a.Permissions)
	}
	var names []string
	for _, ev := range a.Hooks {
		names = append(names, ev.Name)
	}
	want := "ApplicationStop BeforeInstall AfterInstall ApplicationStart ValidateService BeforeAllowTraffic AfterAllowTraffic BeforeBlockTraffic AfterBlockTraffic"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("events in file order:\n got %s\nwant %s", got, want)
	}
	if s := a.Hooks[2].Scripts[0]; s.Location != "scripts/configure.sh" || s.Timeout != 120 || s.Runas != "www-data" {
		t.Errorf("AfterInstall script: %+v", s)
	}
	if s := a.Hooks[5].Scripts[0]; s.Timeout != 0 {
		t.Errorf("BeforeAllowTraffic names no timeout, got %d", s.Timeout)
	}
}

func TestBluegreenHooks(t *testing.T) {
	a, err := Parse([]byte(`version: 0.0
os: linux
hooks:
  AfterAllowTraffic: [{ location: scripts/c.sh, timeout: 90 }]
  ApplicationStop:
    - location: /scripts/stop.sh
      timeout: 3600
  BeforeInstall:
    - { location: scripts/a.sh, runas: root }
    - { location: ./scripts/b.sh, timeout: 300 }
  AfterAllowTestTraffic: [{ location: scripts/smoke.sh, timeout: 45 }]
  ValidateService:
`), "appspec.yml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range a.BluegreenHooks() {
		got = append(got, fmt.Sprintf("%s<%s %s %s default=%v runas=%q", h.Event, h.From, h.Run, FormatTimeout(h.Timeout), h.DefaultTimeout, h.Runas))
	}
	want := []string{
		`before_install<BeforeInstall ./scripts/a.sh 1h default=true runas="root"`,
		`before_install<BeforeInstall ./scripts/b.sh 5m default=false runas=""`,
		`after_allow_test_traffic<AfterAllowTestTraffic ./scripts/smoke.sh 45s default=false runas=""`,
		`after_allow_traffic<AfterAllowTraffic ./scripts/c.sh 1m30s default=false runas=""`,
		`application_stop<ApplicationStop ./scripts/stop.sh 1h default=false runas=""`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("hooks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestFormatTimeout(t *testing.T) {
	for secs, want := range map[int]string{1: "1s", 59: "59s", 60: "1m", 90: "1m30s", 300: "5m", 3600: "1h", 3660: "1h1m", 3601: "1h0m1s", 7200: "2h"} {
		if got := FormatTimeout(time.Duration(secs) * time.Second); got != want {
			t.Errorf("%ds: got %s, want %s", secs, got, want)
		}
	}
}

// problemCases holds one broken appspec per rule; the full report of every
// case is in testdata/problems.golden.
var problemCases = []struct{ name, yaml, want string }{
	{"empty", "", "the file is empty"},
	{"not yaml", "version: [0.0\n", "bad YAML"},
	{"two documents", "version: 0.0\nos: linux\n---\nos: linux\n", "one YAML document"},
	{"a list", "- version: 0.0\n", "want a mapping of keys"},
	{"no version", "os: linux\n", "version: is required"},
	{"wrong version", "version: 1.0\nos: linux\n", `must be 0.0, got "1.0"`},
	{"no os", "version: 0.0\n", "os: is required: linux"},
	{"windows", "version: 0.0\nos: windows\n", "bluegreen runs apps on Linux"},
	{"unknown os", "version: 0.0\nos: macos\n", "must be linux or windows"},
	{"unknown key", "version: 0.0\nos: linux\nhook: {}\n", `unknown key (did you mean "hooks"?)`},
	{"ecs form", "version: 0.0\nResources:\n  - TargetService: {}\nHooks:\n  - BeforeInstall: fn\n", "ECS or Lambda form"},
	{"file_exists_behavior", "version: 0.0\nos: linux\nfile_exists_behavior: KEEP\n", "DISALLOW, OVERWRITE or RETAIN"},
	{"files not a list", "version: 0.0\nos: linux\nfiles: /\n", "want a list"},
	{"file without destination", "version: 0.0\nos: linux\nfiles:\n  - source: /\n", "destination: is required"},
	{"file unknown key", "version: 0.0\nos: linux\nfiles:\n  - { source: /, destination: /x, dest: /y }\n", "unknown key"},
	{"permission without object", "version: 0.0\nos: linux\npermissions:\n  - { owner: root }\n", "object: is required"},
	{"permission bad type", "version: 0.0\nos: linux\npermissions:\n  - { object: /x, type: [socket] }\n", "must be file or directory"},
	{"permission unknown key", "version: 0.0\nos: linux\npermissions:\n  - { object: /x, ower: root }\n", `did you mean "owner"`},
	{"hooks a list", "version: 0.0\nos: linux\nhooks:\n  - BeforeInstall: x\n", "want a mapping"},
	{"unknown event", "version: 0.0\nos: linux\nhooks:\n  AfterInstal: []\n", `did you mean "AfterInstall"`},
	{"event in another case", "version: 0.0\nos: linux\nhooks:\n  application_stop: []\n", `did you mean "ApplicationStop"`},
	{"reserved event", "version: 0.0\nos: linux\nhooks:\n  Install: [{ location: x.sh }]\n", "CodeDeploy runs this step itself"},
	{"event given twice", "version: 0.0\nos: linux\nhooks:\n  BeforeInstall: []\n  BeforeInstall: []\n", "given twice"},
	{"script not a mapping", "version: 0.0\nos: linux\nhooks:\n  BeforeInstall: [scripts/a.sh]\n", "want a script, like"},
	{"script without location", "version: 0.0\nos: linux\nhooks:\n  BeforeInstall: [{ timeout: 30 }]\n", "location: is required"},
	{"location outside", "version: 0.0\nos: linux\nhooks:\n  BeforeInstall: [{ location: ../a.sh }]\n", "points outside the bundle"},
	{"location with a space", "version: 0.0\nos: linux\nhooks:\n  BeforeInstall: [{ location: my script.sh }]\n", "rename the script"},
	{"timeout not a number", "version: 0.0\nos: linux\nhooks:\n  BeforeInstall: [{ location: a.sh, timeout: 5m }]\n", "want a whole number of seconds"},
	{"timeout too long", "version: 0.0\nos: linux\nhooks:\n  BeforeInstall: [{ location: a.sh, timeout: 7200 }]\n", "between 1 and 3600 seconds, got 7200"},
	{"timeout zero", "version: 0.0\nos: linux\nhooks:\n  BeforeInstall: [{ location: a.sh, timeout: 0 }]\n", "between 1 and 3600"},
	{"script unknown key", "version: 0.0\nos: linux\nhooks:\n  BeforeInstall: [{ location: a.sh, run_as: root }]\n", `did you mean "runas"`},
}

func TestProblems(t *testing.T) {
	var report strings.Builder
	for _, tc := range problemCases {
		_, err := Parse([]byte(tc.yaml), "appspec.yml")
		var errs *Errors
		if !errors.As(err, &errs) {
			t.Errorf("%s: want problems, got %v", tc.name, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: problems do not mention %q:\n%s", tc.name, tc.want, err)
		}
		fmt.Fprintf(&report, "== %s\n%s\n", tc.name, err)
	}
	golden(t, "testdata/problems.golden", report.String())
}

func TestEveryProblemAtOnce(t *testing.T) {
	_, err := Parse([]byte(`version: 0.1
os: linux
files:
  - source: /
hooks:
  BeforeInstall: [{ location: a.sh, timeout: 99999 }]
  AfterInstal: []
`), "appspec.yml")
	want := `appspec.yml:1:10: version: must be 0.0, got "0.1"
appspec.yml:4:5: files[0].destination: is required: where CodeDeploy copies source, like /var/www/app
appspec.yml:6:46: hooks.BeforeInstall[0].timeout: must be between 1 and 3600 seconds, got 99999
appspec.yml:7:3: hooks.AfterInstal: unknown lifecycle event (did you mean "AfterInstall"?); scripts run at ApplicationStop, BeforeInstall, AfterInstall, ApplicationStart, ValidateService, AfterAllowTestTraffic, BeforeAllowTraffic, AfterAllowTraffic, BeforeBlockTraffic, AfterBlockTraffic`
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

// TestBoundedReport: aliases of aliases and thousands of bad entries give
// a report of at most 50 problems, quickly.
func TestBoundedReport(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 0.0\nos: linux\nfiles:\n  - &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 8; i++ {
		fmt.Fprintf(&b, "  - &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	b.WriteString("permissions:\n")
	for i := 0; i < 5000; i++ {
		b.WriteString("  - { mode: 755 }\n")
	}
	_, err := Parse([]byte(b.String()), "appspec.yml")
	var errs *Errors
	if !errors.As(err, &errs) || len(errs.Problems) != maxProblems+1 {
		t.Fatalf("want %d problems and a count of the rest, got %v", maxProblems, err)
	}
	if last := errs.Problems[maxProblems].Message; !strings.HasPrefix(last, "and ") || !strings.HasSuffix(last, " more problems") {
		t.Errorf("last problem: %q", last)
	}
}

func TestNotMapped(t *testing.T) {
	a, err := ParseFile("../../examples/codedeploy/appspec.yml")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, n := range a.NotMapped() {
		fmt.Fprintf(&b, "%s: %s\n  %s\n", n.Topic, strings.Join(n.What, " | "), n.Why)
	}
	golden(t, "testdata/notmapped.golden", b.String())
	if len((&AppSpec{Version: "0.0", OS: "linux"}).NotMapped()) != 0 {
		t.Error("an appspec of hooks only has nothing unmapped")
	}
}

func TestInspect(t *testing.T) {
	fsys := fstest.MapFS{
		"scripts/start.sh": {Mode: 0o755, Data: []byte("#!/bin/sh\n# systemctl start commented.service\nset -e\nsudo systemctl --no-block start shop.service\necho $LIFECYCLE_EVENT in ${DEPLOYMENT_ID}\necho $DEPLOYMENT_ID again\n")},
		"scripts/nohup.sh": {Mode: 0o755, Data: []byte("#!/bin/sh\nnohup ./shop > /var/log/shop.log 2>&1 &\n")},
		"scripts/stop.sh":  {Mode: 0o755, Data: []byte("#!/bin/sh\nservice shop stop\npm2 stop all\n")},
		"scripts/plain.sh": {Mode: 0o644, Data: []byte("#!/bin/sh\necho $BG_APP $APPLICATION_NAME_X\n")},
		"scripts/other.sh": {Mode: 0o755, Data: []byte("#!/bin/sh\nsystemctl restart nginx\n")},
		"scripts/dir":      {Mode: 0o755 | 1<<31},
	}
	hooks := []Hook{
		{From: "ApplicationStart", Location: "scripts/start.sh"},
		{From: "ApplicationStart", Location: "scripts/start.sh"}, // looked at once
		{From: "ApplicationStart", Location: "scripts/nohup.sh"},
		{From: "ApplicationStop", Location: "scripts/stop.sh"},
		{From: "ApplicationStop", Location: "scripts/nohup.sh"}, // starts, at stop: not this case
		{From: "AfterInstall", Location: "scripts/other.sh"},    // restarting another service is fine
		{From: "AfterInstall", Location: "scripts/plain.sh"},
		{From: "BeforeInstall", Location: "scripts/missing.sh"},
		{From: "BeforeInstall", Location: "scripts/dir"},
	}
	var b strings.Builder
	for _, n := range Inspect(fsys, hooks) {
		fmt.Fprintf(&b, "%s: %s\n  %s\n", n.Topic, strings.Join(n.What, " | "), n.Why)
	}
	golden(t, "testdata/inspect.golden", b.String())
}

// golden compares got with the file, or rewrites it with -update.
func golden(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run the test with -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (-update rewrites it):\n got:\n%s\nwant:\n%s", file, got, want)
	}
}
