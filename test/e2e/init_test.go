package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"bluegreen/internal/api"
)

// TestInitFromCodeDeployDeploys converts the CodeDeploy sample of
// examples/codedeploy with `bluegreen init --from`, as its README says, and
// deploys the result to a real server three times: the first deployment,
// a second one that retires the first (whose ApplicationStop script runs
// as application_stop, from the first revision), and a third whose
// ValidateService script fails, so that the rollback runs the third
// revision's own application_stop before stopping it.
func TestInitFromCodeDeployDeploys(t *testing.T) {
	e := newSampleEnv(t)
	work := t.TempDir()
	dir := filepath.Join(work, "bundle")
	copyDir(t, "../../examples/codedeploy", dir)
	copyFile(t, bin.hello, filepath.Join(dir, "shop"), 0o755)

	// What the user sees is what the command's golden output says.
	out := runIn(t, work, 0, "init", "--from", "bundle/appspec.yml", "--app", "shop", "--command", "./shop")
	if want := goldenRun(t, "../../internal/cli/testdata/init/from-codedeploy.out"); out != want {
		t.Errorf("init printed:\n%s\nwant (internal/cli/testdata/init/from-codedeploy.out):\n%s", out, want)
	}
	if out := runIn(t, work, 0, "validate", "bundle"); out != "ok: bundle/bluegreen.yaml (app shop)\n" {
		t.Errorf("validate: %q", out)
	}

	// The test's own listeners and a lifecycle short enough for a test.
	file := filepath.Join(dir, "bluegreen.yaml")
	edit(t, file,
		"production: 127.0.0.1:8080", "production: "+e.prod,
		"test: 127.0.0.1:8081", "test: "+e.test,
		"instances: 1", "instances: 2",
		"health:\n", "health:\n  interval: 100ms\n  timeout: 100ms\n  healthy_threshold: 1\n  startup_timeout: 10s\n",
		"bake: 5m", "bake: 1s",
		"keep_blue: 1h", "keep_blue: 0s\n  drain_timeout: 2s",
	)

	// v1: a first deployment has nothing to stop, so no application_stop.
	d1 := e.deployDir(dir, 0)
	e.wantHooks(d1, []string{"before_install", "after_install", "application_start", "validate_service", "before_allow_traffic", "after_allow_traffic"})

	// v2: v1 retires; its own ApplicationStop script runs, from its own
	// directory, after the block-traffic hooks and before its instances stop.
	writeFile(t, filepath.Join(dir, "VERSION"), "v2\n", 0o644)
	d2 := e.deployDir(dir, 0)
	evs := e.wantHooks(d2, []string{"before_install", "after_install", "application_start", "validate_service",
		"before_allow_traffic", "after_allow_traffic", "before_block_traffic", "after_block_traffic", "application_stop"})
	stop := evs["application_stop"]
	if stop.Fields["role"] != "blue" || stop.Fields["revision"] != 1.0 || stop.Fields["run"] != "./scripts/stop_server.sh" ||
		!strings.Contains(stop.Fields["output"].(string), "stopping shop v1") {
		t.Errorf("application_stop of deployment 2: %s %v", stop.Message, stop.Fields)
	}
	if out := evs["after_allow_traffic"].Fields["output"].(string); !strings.Contains(out, "shop v2 serves all traffic") {
		t.Errorf("after_allow_traffic ran elsewhere than v2's directory: %q", out)
	}
	e.wantAfter(d2, stop, "blue retired")

	// v3 fails ValidateService: the rollback stops v3 after its own
	// application_stop ran; v2 stays live and its hooks do not run.
	writeFile(t, filepath.Join(dir, "VERSION"), "v3\n", 0o644)
	writeFile(t, filepath.Join(dir, "scripts/validate_service.sh"), "#!/bin/sh\necho \"checkout answered 500\"\nexit 1\n", 0o755)
	d3 := e.deployDir(dir, 3)
	var stop3 []api.Event
	for _, ev := range e.events(d3) {
		if ev.Kind == "hook.succeeded" && ev.Fields["event"] == "application_stop" {
			stop3 = append(stop3, ev)
		}
	}
	if len(stop3) != 1 || stop3[0].Fields["role"] != "green" || stop3[0].Fields["revision"] != 3.0 ||
		!strings.Contains(stop3[0].Fields["output"].(string), "stopping shop v3") {
		t.Fatalf("application_stop of the rolled-back deployment: %v\n%s", stop3, e.eventLog(d3))
	}
	e.wantAfter(d3, stop3[0], "rolled back to revision 2")
	if got := httpGet(t, "http://"+e.prod+"/"); got != "hello from v2" {
		t.Errorf("after the rollback production answers %q", got)
	}
}

// newSampleEnv starts the server as a user would: as root, its apps and
// hooks each app's own user (the sample's scripts write nothing, so they
// need no more), built with the race detector since a rollback races with
// the engine's own work.
func newSampleEnv(t *testing.T) *deployEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		return newRaceDeployEnv(t)
	}
	e := &deployEnv{t: t, data: filepath.Join(passableTempDir(t), "data"), prod: freeAddr(t), test: freeAddr(t), binary: bin.bluegreenRace}
	t.Cleanup(e.teardown)
	e.startServer()
	return e
}

// TestApplicationStopFailureIsPassedOver: blue's application_stop runs
// while blue's instances still run, with blue's revision number, and its
// failure does not hold the retirement back.
func TestApplicationStopFailureIsPassedOver(t *testing.T) {
	e := newDeployEnv(t)
	stop := "#!/bin/sh\necho \"revision $BG_REVISION of $BG_APP, event $BG_LIFECYCLE_EVENT\"\n" +
		"for target in $(echo \"$BG_BLUE_TARGETS\" | tr ',' ' '); do curl -fsS \"http://$target/\"; echo; done\nexit 7\n"
	spec := e.specFor(quick + "hooks:\n  application_stop: [{ run: ./hooks/stop.sh, timeout: 10s }]\n")
	e.deployLiveFiles("v1", spec, map[string]string{"hooks/stop.sh": stop})
	d := e.deployLiveFiles("v2", spec, map[string]string{"hooks/stop.sh": stop})
	var failed []api.Event
	for _, ev := range e.events(d.ID) {
		if ev.Kind == "hook.failed" {
			failed = append(failed, ev)
		}
	}
	if len(failed) != 1 || failed[0].Fields["role"] != "blue" || failed[0].Fields["exit_code"] != 7.0 {
		t.Fatalf("want blue's application_stop to fail once: %v\n%s", failed, e.eventLog(d.ID))
	}
	want := "hook application_stop[0] of revision 1 (blue) failed: \"./hooks/stop.sh\" exited with status 7; passed over, the fleet stops anyway"
	if failed[0].Message != want {
		t.Errorf("message %q, want %q", failed[0].Message, want)
	}
	out := failed[0].Fields["output"].(string)
	if !strings.Contains(out, "revision 1 of shop, event application_stop") || strings.Count(out, "hello from v1") != 2 {
		t.Errorf("blue's application_stop did not see blue's two instances running:\n%s", out)
	}
	e.wantAfter(d.ID, failed[0], "blue retired")
}

// deployLiveFiles deploys a version with extra files and waits until it
// succeeded.
func (e *deployEnv) deployLiveFiles(version, spec string, files map[string]string) api.Deployment {
	e.t.Helper()
	d := e.waitEnd(e.deploy(version, spec, files).ID, 60*time.Second)
	if d.Outcome != "succeeded" {
		e.t.Fatalf("deploying %s: %s (%s)\n%s", version, d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	return d
}

// deployDir deploys a directory with the CLI, waits for its end (blue
// retired, or the rollback done) with the exit code wanted (0 succeeded, 3
// rolled back) and returns its ID.
func (e *deployEnv) deployDir(dir string, code int) string {
	e.t.Helper()
	r := e.cli("deploy", dir, "--wait-retired")
	m := regexp.MustCompile(`started deployment (d-[0-9a-f]+)`).FindStringSubmatch(r.stdout)
	if r.code != code || m == nil {
		e.t.Fatalf("deploy %s: exit %d (want %d)\nstdout: %s\nstderr: %s", dir, r.code, code, r.stdout, r.stderr)
	}
	return m[1]
}

// wantHooks checks that the deployment's hooks succeeded in this order,
// once each, and returns their events by hook event.
func (e *deployEnv) wantHooks(id string, order []string) map[string]api.Event {
	e.t.Helper()
	byEvent := map[string]api.Event{}
	var got []string
	for _, ev := range e.events(id) {
		switch ev.Kind {
		case "hook.succeeded":
			name, _ := ev.Fields["event"].(string)
			got = append(got, name)
			byEvent[name] = ev
		case "hook.failed":
			e.t.Errorf("deployment %s: %s\n%v", id, ev.Message, ev.Fields["output"])
		}
	}
	if strings.Join(got, " ") != strings.Join(order, " ") {
		e.t.Fatalf("deployment %s ran hooks\n %s\nwant\n %s\n%s", id, strings.Join(got, " "), strings.Join(order, " "), e.eventLog(id))
	}
	return byEvent
}

// wantAfter checks that the phase event whose message starts with phase
// came after ev.
func (e *deployEnv) wantAfter(id string, ev api.Event, phase string) {
	e.t.Helper()
	for _, p := range e.events(id) {
		if p.Kind == "phase" && strings.HasPrefix(p.Message, phase) {
			if p.Seq < ev.Seq {
				e.t.Errorf("%q (event %d) came before %q (event %d)", p.Message, p.Seq, ev.Message, ev.Seq)
			}
			return
		}
	}
	e.t.Errorf("deployment %s has no phase event %q\n%s", id, phase, e.eventLog(id))
}

// runIn runs the bluegreen binary in dir, wants the exit code and returns
// stdout and stderr together.
func runIn(t *testing.T, dir string, code int, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin.bluegreen, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	got := 0
	if ee, ok := err.(*exec.ExitError); ok {
		got = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if got != code {
		t.Fatalf("bluegreen %v: exit %d, want %d\n%s", args, got, code, out)
	}
	return string(out)
}

// goldenRun is the output of the first command of a CLI golden transcript.
func goldenRun(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(b), "\n")
	out, _, ok := strings.Cut(rest, "exit 0\n")
	if !ok {
		t.Fatalf("%s: no first command ending with exit 0", file)
	}
	return out
}

// edit replaces each old with its new in file; each old must be there.
func edit(t *testing.T, file string, pairs ...string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("%s has no %q:\n%s", file, pairs[i], s)
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	writeFile(t, file, s, 0o644)
}

func writeFile(t *testing.T, name, body string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(name, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(name, mode); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dst, string(b), mode)
}

// copyDir copies a directory tree, keeping the files' modes, and leaving
// out what its .gitignore names at its top (what a run of its README made).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	ignored := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(src, ".gitignore")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			ignored[strings.TrimPrefix(l, "/")] = true
		}
	}
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if ignored[rel] {
			return nil
		}
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		copyFile(t, p, target, info.Mode().Perm())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// httpGet returns the body of a GET.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}
