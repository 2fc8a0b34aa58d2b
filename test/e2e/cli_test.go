package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
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
	"bluegreen/internal/testwait"
)

// cliResult is what one run of the bluegreen binary as a client gave.
type cliResult struct {
	stdout, stderr string
	code           int
}

// cli runs `bluegreen ARGS --data DATA` against the env's server: --data
// lets the command find the server (and its admin token, when it has one).
func (e *deployEnv) cli(args ...string) cliResult {
	e.t.Helper()
	cmd := exec.Command(bin.bluegreen, append(args, "--data", e.data)...)
	cmd.Env = append(os.Environ(), e.env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := cliResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		e.t.Fatalf("bluegreen %v: %v", args, err)
	}
	return r
}

// mustCLI runs the command and wants exit code 0.
func (e *deployEnv) mustCLI(args ...string) string {
	e.t.Helper()
	r := e.cli(args...)
	if r.code != 0 {
		e.t.Fatalf("bluegreen %v exited %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// wantCLI runs the command and wants the exit code and stderr containing msg.
func (e *deployEnv) wantCLI(code int, msg string, args ...string) cliResult {
	e.t.Helper()
	r := e.cli(args...)
	if r.code != code || !strings.Contains(r.stderr, msg) {
		e.t.Errorf("bluegreen %v: exit %d, stderr %q; want exit %d and %q", args, r.code, r.stderr, code, msg)
	}
	return r
}

// bundleDir writes hello, its VERSION and the spec into a new directory.
func (e *deployEnv) bundleDir(version, spec string, files map[string]string) string {
	t := e.t
	t.Helper()
	prog, err := os.ReadFile(bin.hello)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte, mode os.FileMode) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("hello", prog, 0o755)
	write("VERSION", []byte(version+"\n"), 0o644)
	write("bluegreen.yaml", []byte(spec), 0o644)
	for name, body := range files {
		write(name, []byte(body), 0o755)
	}
	return dir
}

// background is a client command left running (events -f, logs -f).
type background struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
	code  int
}

func (e *deployEnv) cliBackground(args ...string) *background {
	e.t.Helper()
	cmd := exec.Command(bin.bluegreen, append(args, "--data", e.data)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	b := &background{cmd: cmd, lines: make(chan string, 1000), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			b.lines <- sc.Text()
		}
		close(b.lines)
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			b.code = ee.ExitCode()
		}
		close(b.done)
	}()
	e.t.Cleanup(func() { _ = cmd.Process.Kill(); <-b.done })
	return b
}

// waitLine waits for a line of output containing s.
func (b *background) waitLine(t *testing.T, s string) string {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-b.lines:
			if !ok {
				t.Fatalf("the command ended before printing %q", s)
			}
			if strings.Contains(l, s) {
				return l
			}
		case <-timeout:
			t.Fatalf("no line with %q within a minute", s)
		}
	}
}

// interrupt sends SIGINT and returns the exit code.
func (b *background) interrupt(t *testing.T) int {
	t.Helper()
	_ = b.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-b.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the command did not stop on SIGINT")
	}
	return b.code
}

func TestCLIUsageAndUnknownApp(t *testing.T) {
	e := newDeployEnv(t)
	if out := e.mustCLI("apps"); !strings.Contains(out, "no apps yet") {
		t.Errorf("apps with none: %q", out)
	}
	if out := e.mustCLI("apps", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("apps --json with none: %q", out)
	}
	// Usage: exit 2.
	e.wantCLI(2, "status takes one app name", "status")
	e.wantCLI(2, "unknown flag: --bogus", "deploy", "--bogus")
	e.wantCLI(2, "--window must be 10s or 1m", "status", "shop", "--window", "5m")
	e.wantCLI(2, "--fleet must be blue or green", "logs", "shop", "--fleet", "red")
	e.wantCLI(2, "no such file or directory", "deploy", filepath.Join(t.TempDir(), "missing"))
	// An unknown app: exit 1, one line naming it.
	for _, args := range [][]string{
		{"status", "nope"}, {"history", "nope"}, {"events", "nope"}, {"logs", "nope"},
	} {
		r := e.wantCLI(1, "app nope: not found (see `bluegreen apps`)", args...)
		if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("bluegreen %v: more than one line: %q", args, r.stderr)
		}
	}
	e.wantCLI(1, "app nope", "promote", "nope")
	e.wantCLI(1, "app nope", "abort", "nope")
	e.wantCLI(1, "app nope", "rollback", "nope")
	// No server: exit 1 with what to do.
	r := e.cli("apps", "--server", "127.0.0.1:1")
	if r.code != 1 || !strings.Contains(r.stderr, "is `bluegreen server` running?") {
		t.Errorf("apps without a server: exit %d, %q", r.code, r.stderr)
	}
}

func TestCLIDeployLifecycle(t *testing.T) {
	e := newDeployEnv(t)

	// v1 from a directory, followed to its end.
	out := e.mustCLI("deploy", e.bundleDir("v1", e.specFor(quick), nil), "--message", "first", "--wait")
	for _, want := range []string{"uploaded revision 1 of shop", "started deployment d-", "Validating", "succeeded: revision 1 is live"} {
		if !strings.Contains(out, want) {
			t.Errorf("deploy --wait output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("deploy --wait to a pipe drew with escape sequences:\n%q", out)
	}
	var apps []api.App
	if err := json.Unmarshal([]byte(e.mustCLI("apps", "--json")), &apps); err != nil || len(apps) != 1 || apps[0].LiveRevision != 1 {
		t.Fatalf("apps --json: %v %+v", err, apps)
	}
	if out := e.mustCLI("apps"); !strings.Contains(out, "shop") || !strings.Contains(out, "revision 1") {
		t.Errorf("apps: %q", out)
	}

	// Follow the app's events while v2 deploys.
	evs := e.cliBackground("events", "shop", "-f", "--json", "--tail", "1")
	evs.waitLine(t, `"kind":"phase"`) // the last event of v1

	// v2 as an archive with another spec: manual approval, a pause.
	archive := filepath.Join(t.TempDir(), "v2.tgz")
	if err := os.WriteFile(archive, e.bundle("v2", e.specFor(quick), nil), 0o644); err != nil {
		t.Fatal(err)
	}
	specFile := filepath.Join(t.TempDir(), "manual.yaml")
	manual := e.specFor(quick + "strategy:\n  approval: manual\n  steps:\n    - { weight: 40, pause: {} }\n    - { weight: 100 }\n")
	if err := os.WriteFile(specFile, []byte(manual), 0o644); err != nil {
		t.Fatal(err)
	}
	out = e.mustCLI("deploy", archive, "-f", specFile)
	id := deploymentID(t, out)
	e.waitPhase(id, 30*time.Second, "AwaitingApproval")
	if out := e.mustCLI("status", "shop"); !strings.Contains(out, "AwaitingApproval") || !strings.Contains(out, "waits for promote") {
		t.Errorf("status while awaiting approval:\n%s", out)
	}
	// A deployment of the app is in progress: another one is refused
	// before anything is uploaded, and says what to do.
	r := e.wantCLI(1, "has a deployment in progress ("+id+", AwaitingApproval); nothing was uploaded", "deploy", e.bundleDir("v9", e.specFor(quick), nil))
	if strings.Contains(r.stdout, "uploaded") {
		t.Errorf("deploy during a deployment uploaded: %s", r.stdout)
	}
	e.mustCLI("promote", "shop")
	e.waitPhase(id, 30*time.Second, "Shifting")
	var st api.Status
	testwait.For(t, 30*time.Second, "status to show green at 40%", func() bool {
		st = api.Status{}
		return json.Unmarshal([]byte(e.mustCLI("status", "shop", "--json")), &st) == nil && st.Progress != nil && st.Progress.Weight == 40
	})
	if st.Progress.Waiting != "promote" || st.Progress.Steps != 2 || len(st.Fleets) != 2 {
		t.Errorf("status --json while paused: %+v", st)
	}
	out = e.mustCLI("status", "shop")
	for _, want := range []string{"Shifting, step 1 of 2", "blue ██████░░░░  60% | green ████░░░░░░  40%", "test listener", "healthy"} {
		if !strings.Contains(out, want) {
			t.Errorf("status while shifting lacks %q:\n%s", want, out)
		}
	}
	evs.waitLine(t, `"weight":40`)
	e.mustCLI("promote", "shop", "--full")
	if d := e.waitEnd(id, 60*time.Second); d.Outcome != "succeeded" {
		t.Fatalf("v2 ended %s: %s", d.Outcome, d.Reason)
	}
	evs.waitLine(t, "deployment succeeded")
	if code := evs.interrupt(t); code != 0 {
		t.Errorf("events -f exited %d on SIGINT", code)
	}

	// The revision kept the spec given with -f.
	if out := e.mustCLI("history", "shop"); !strings.Contains(out, "1 → 2") || !strings.Contains(out, "succeeded") {
		t.Errorf("history:\n%s", out)
	}
	var ds []api.Deployment
	if err := json.Unmarshal([]byte(e.mustCLI("history", "shop", "--json")), &ds); err != nil || len(ds) != 2 || ds[0].ID != id {
		t.Fatalf("history --json: %v %+v", err, ds)
	}
	if out := e.mustCLI("events", "shop"); !strings.Contains(out, "waiting for promote") {
		t.Errorf("events: the deployment of v2 did not wait for approval (was -f's spec used?):\n%s", out)
	}

	// Logs of the live fleet, then followed.
	if out := e.mustCLI("logs", "shop", "--tail", "5"); !strings.Contains(out, "hello v2 listening") {
		t.Errorf("logs:\n%s", out)
	}
	lf := e.cliBackground("logs", "shop", "-f", "--tail", "1")
	lf.waitLine(t, "listening")
	if code := lf.interrupt(t); code != 0 {
		t.Errorf("logs -f exited %d on SIGINT", code)
	}

	// A revision the app does not have is named as such.
	e.wantCLI(1, "app shop has no revision 99", "rollback", "shop", "--to", "99")
	// A directory without a spec is refused before anything is uploaded.
	e.wantCLI(2, "has no bluegreen.yaml: write one (`bluegreen init", "deploy", t.TempDir())

	// Nothing to promote or abort now; rollback deploys v1 again.
	e.wantCLI(1, "no deployment in progress", "abort", "shop")
	out = e.mustCLI("rollback", "shop", "--wait")
	if !strings.Contains(out, "back to revision 1") || !strings.Contains(out, "released: revision 1 is live") {
		t.Errorf("rollback --wait:\n%s", out)
	}
	if a, err := e.api.App(context.Background(), "shop"); err != nil || a.LiveRevision != 1 {
		t.Errorf("after rollback: %+v %v", a, err)
	}
}

func TestCLIDeployWaitRollsBack(t *testing.T) {
	e := newDeployEnv(t)
	e.mustCLI("deploy", e.bundleDir("v1", e.specFor(quick), nil), "--wait")
	bad := e.specFor(quick + "hooks:\n  validate_service: [{ run: ./hooks/smoke.sh }]\n")
	dir := e.bundleDir("v2", bad, map[string]string{"hooks/smoke.sh": "#!/bin/sh\necho smoke test: /checkout answered 500\nexit 3\n"})
	r := e.cli("deploy", dir, "--wait")
	if r.code != 3 {
		t.Fatalf("deploy --wait of a failing revision exited %d, want 3\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "rolled back") || !strings.Contains(r.stderr, "validate_service") {
		t.Errorf("stderr does not say why: %q", r.stderr)
	}
	if !strings.Contains(r.stdout, "RollingBack") {
		t.Errorf("progress lacks the rollback:\n%s", r.stdout)
	}
	if out := e.mustCLI("history", "shop"); !strings.Contains(out, "rolled back") {
		t.Errorf("history:\n%s", out)
	}
}

// TestEventStream reads the API's server-sent events directly: a
// reconnecting client's Last-Event-ID is honoured.
func TestEventStream(t *testing.T) {
	e := newDeployEnv(t)
	d := e.deploy("v1", e.specFor(quick), nil)
	e.waitEnd(d.ID, 60*time.Second)
	all := e.events(d.ID)
	if len(all) < 3 {
		t.Fatalf("only %d events", len(all))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.api.Base+"/api/v1/events?app=shop", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+e.api.Token)
	req.Header.Set("Last-Event-ID", strconv.FormatInt(all[1].Seq, 10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("content type %q", ct)
	}
	br := bufio.NewReader(resp.Body)
	var lines []string
	for len(lines) < 4 {
		l, err := br.ReadString('\n')
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if l = strings.TrimRight(l, "\n"); l != "" && !strings.HasPrefix(l, ":") {
			lines = append(lines, l)
		}
	}
	want := []string{"id: " + strconv.FormatInt(all[2].Seq, 10), "event: " + all[2].Kind}
	if lines[0] != want[0] || lines[1] != want[1] || !strings.HasPrefix(lines[2], "data: {") {
		t.Errorf("stream starts %q, want %q then data", lines[:3], want)
	}
}

// deploymentID finds "started deployment d-…" in deploy's output.
func deploymentID(t *testing.T, out string) string {
	t.Helper()
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "d-") {
			return strings.TrimRight(f, ",")
		}
	}
	t.Fatalf("no deployment ID in %q", out)
	return ""
}
