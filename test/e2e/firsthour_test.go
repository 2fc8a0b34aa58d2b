package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// firstHourSpec is a spec for an app nobody here wrote: command is its
// argv as a YAML flow list.
func (e *deployEnv) firstHourSpec(command, extra string) string {
	return fmt.Sprintf(`app: web
process:
  command: %s
  instances: 1
  stop_timeout: 5s
router:
  production: %s
  test: %s
health:
  interval: 100ms
  timeout: 100ms
  healthy_threshold: 1
  startup_timeout: 3s
%s`, command, e.prod, e.test, extra)
}

// nginx failing on its configuration: the deployment's reason, `deploy
// --wait` and `logs` show nginx's own words, and its true exit code.
func TestNginxWithABadConfigSaysWhy(t *testing.T) {
	e := newDeployEnv(t)
	conf := "daemon off;\nmaster_process off;\npid nginx.pid;\nevents {}\nhttp {\n  server {\n    lisen 127.0.0.1:8080;\n  }\n}\n"
	spec := e.firstHourSpec(`["/usr/sbin/nginx", "-p", ".", "-c", "nginx.conf", "-e", "stderr"]`, "")
	dir := e.bundleDir("v1", spec, map[string]string{"nginx.conf": conf})
	cmd := exec.Command(bin.bluegreen, "deploy", "--data", e.data, "--wait", dir)
	out, _ := cmd.CombinedOutput()
	text := string(out)
	for _, want := range []string{
		"green instance web-1-green-0 exited with code 1",
		"its last output:",
		`[emerg]`,
		`unknown directive "lisen" in ./nginx.conf:7`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("deploy --wait does not say %q:\n%s", want, text)
		}
	}
	if cmd.ProcessState.ExitCode() != 3 {
		t.Errorf("deploy --wait exited %d, want 3", cmd.ProcessState.ExitCode())
	}
	t.Logf("deploy --wait said:\n%s", text)

	ds, err := e.api.Deployments(context.Background(), "web")
	if err != nil || len(ds) != 1 {
		t.Fatalf("deployments: %v %v", ds, err)
	}
	if !strings.Contains(ds[0].Reason, `unknown directive "lisen"`) {
		t.Errorf("the deployment's reason lacks nginx's words: %q", ds[0].Reason)
	}
	// Nothing runs, yet logs shows what the failed instance wrote.
	logs, err := exec.Command(bin.bluegreen, "logs", "web", "--data", e.data).CombinedOutput()
	if err != nil || !strings.Contains(string(logs), `unknown directive "lisen"`) {
		t.Errorf("logs web: %v\n%s", err, logs)
	}
	st, err := exec.Command(bin.bluegreen, "status", "web", "--data", e.data).CombinedOutput()
	if err != nil || !strings.Contains(string(st), "rolled back: green instance web-1-green-0 exited with code 1") || !strings.Contains(string(st), `unknown directive "lisen"`) {
		t.Errorf("status web: %v\n%s", err, st)
	}
	hist, err := exec.Command(bin.bluegreen, "history", "web", "--data", e.data).CombinedOutput()
	if err != nil || !strings.Contains(string(hist), `unknown directive "lisen"`) || strings.Contains(string(hist), "…") {
		t.Errorf("history web: %v\n%s", err, hist)
	}
}

// An app without /healthz: the 404 is shown as soon as it is seen, and
// the reason says what each check answered.
func TestAppWithoutHealthzSaysWhy(t *testing.T) {
	e := newDeployEnv(t)
	spec := e.firstHourSpec(`["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", "${PORT}"]`, "")
	dir := e.bundleDir("v1", spec, nil)
	start := time.Now()
	cmd := exec.Command(bin.bluegreen, "deploy", "--data", e.data, "--wait", dir)
	out, _ := cmd.CombinedOutput()
	text := string(out)
	for _, want := range []string{
		"is not healthy yet: GET /healthz answered 404 File not found",
		"green never became healthy: 0 of 1 instance passed /healthz within 3s",
		"last health check: GET /healthz answered 404 File not found",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("deploy --wait does not say %q:\n%s", want, text)
		}
	}
	t.Logf("deploy --wait said, in %s:\n%s", time.Since(start).Round(time.Millisecond), text)
	ds, err := e.api.Deployments(context.Background(), "web")
	if err != nil || len(ds) != 1 || !strings.Contains(ds[0].Reason, "GET /healthz answered 404") {
		t.Fatalf("deployments: %+v %v", ds, err)
	}
	var first time.Time
	for _, ev := range e.events(ds[0].ID) {
		if ev.Kind == "health.failing" && first.IsZero() {
			first = ev.Time
		}
	}
	if first.IsZero() || first.Sub(ds[0].CreatedAt) > 2*time.Second {
		t.Errorf("the first failing answer was reported at %v, %s after the deployment began", first, first.Sub(ds[0].CreatedAt))
	}
}

// A port already in use: the reason shows what the app said, not only
// that /healthz did not answer.
func TestPortInUseSaysWhy(t *testing.T) {
	e := newDeployEnv(t)
	spec := e.firstHourSpec(`["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", "`+strings.Split(e.prod, ":")[1]+`"]`, "")
	d := e.deploy("v1", spec, nil)
	d = e.waitEnd(d.ID, 30*time.Second)
	if d.Outcome != "rolled_back" || !strings.Contains(d.Reason, "Address already in use") {
		t.Fatalf("%s (%s)", d.Outcome, d.Reason)
	}
	t.Logf("reason: %s", d.Reason)
}
