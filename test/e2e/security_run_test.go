package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/testwait"
)

// passableTempDir is a temporary directory other users may pass through
// (not list): a test's own is closed to them, and the users apps run as
// must reach the data directory below it.
func passableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// newDefaultRunAsEnv starts a server as root with the default run-as
// policy: a user of each app's own.
func newDefaultRunAsEnv(t *testing.T) *deployEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the server must run as root to run apps as other users")
	}
	e := &deployEnv{t: t, data: filepath.Join(passableTempDir(t), "data"), prod: freeAddr(t), test: freeAddr(t), binary: bin.bluegreen}
	t.Cleanup(e.teardown)
	e.startServer()
	return e
}

// ownSpec is a spec of app with its own listeners, whose instances print
// their API_KEY param and user before starting hello.
func ownSpec(app, prod, test, extra string) string {
	return fmt.Sprintf(`app: %s
process:
  command: ["sh", "-c", "echo app key=$$API_KEY uid=$$(id -u); exec ./hello"]
  instances: 2
  stop_timeout: 5s
router:
  production: %s
  test: %s
health:
  path: /healthz
  interval: 100ms
  timeout: 100ms
  healthy_threshold: 1
  startup_timeout: 10s
bake: 0s
retire:
  keep_blue: 0s
  drain_timeout: 1s
%s`, app, prod, test, extra)
}

// procUID reads the real, effective, saved and filesystem uids of pid.
func procUID(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("/proc/%d/status has no Uid line", pid)
	}
	if m[1] != m[2] || m[1] != m[3] || m[1] != m[4] {
		t.Fatalf("pid %d has mixed uids %v", pid, m[1:])
	}
	return m[1]
}

// A deployer's token must not lead to the admin's: a hook deployed with it
// tries to read the admin token, the params key, the database, another
// app's revision and process, and prints a secure param and its
// environment. It runs as the app's own user and reads none of them; the
// secure value never appears in what the API serves; viewers do not see
// hook output at all.
func TestDeployerHookCannotReachTheServersSecrets(t *testing.T) {
	e := newDefaultRunAsEnv(t)
	ctx := context.Background()
	const secret = "sk-live-3f9c2a7d41e8b605"
	adminToken := e.api.Token

	client := func(role string) *api.Client {
		tok, err := e.api.CreateToken(ctx, role+"-test", role)
		if err != nil {
			t.Fatal(err)
		}
		c := api.NewClient(e.api.Base)
		c.Token = tok.Secret
		return c
	}
	deployer, viewer := client("deployer"), client("viewer")

	// Another app, to be spied on.
	blogSpec := ownSpec("blog", freeAddr(t), freeAddr(t), "")
	if _, err := deployer.PutParam(ctx, "/blog/API_KEY", "blog-secret-7c1d9e", true, 0); err != nil {
		t.Fatal(err)
	}
	blogSpec += "params: [/blog/API_KEY]\n"
	rev, err := deployer.UploadRevision(ctx, bytes.NewReader((e.bundle("blog1", blogSpec, nil))), "blog")
	if err != nil {
		t.Fatal(err)
	}
	d, err := deployer.Deploy(ctx, "blog", rev.Generation)
	if err != nil {
		t.Fatal(err)
	}
	if d = e.waitEnd(d.ID, 60*time.Second); d.Outcome != "succeeded" {
		t.Fatalf("blog: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	blog, err := e.api.Instances(ctx, "blog")
	if err != nil || len(blog) == 0 {
		t.Fatalf("blog's instances: %v, %v", blog, err)
	}

	if _, err := deployer.PutParam(ctx, "/shop/API_KEY", secret, true, 0); err != nil {
		t.Fatal(err)
	}
	targets := []string{
		"admin.token", "params.key", "bluegreen.db", "server.json", "run-as.json",
		"revisions/blog/1/bluegreen.yaml", "revisions/blog/1/hello",
		fmt.Sprintf("instances/logs/%s.log", blog[0].ID), fmt.Sprintf("instances/instances/%s.json", blog[0].ID),
		fmt.Sprintf("/proc/%d/environ", blog[0].PID), fmt.Sprintf("/proc/%d/environ", e.srv.Process.Pid),
	}
	var probe strings.Builder
	probe.WriteString("#!/bin/sh\ncd \"$DATA\" 2>/dev/null\necho \"hook uid=$(id -u) gid=$(id -g) groups=$(id -G)\"\n")
	for _, f := range targets {
		fmt.Fprintf(&probe, "if cat %q >/dev/null 2>&1; then echo 'READ %s'; cat %q; else echo 'DENIED %s'; fi\n", f, f, f, f)
	}
	for _, d := range []string{"revisions/blog", "router", "."} {
		fmt.Fprintf(&probe, "ls %q >/dev/null 2>&1 && echo 'LISTED %s' || echo 'DENIED listing %s'\n", d, d, d)
	}
	// A control: the hook reads its own revision, so a denial above is
	// the permissions' doing, not a wrong path.
	probe.WriteString("cat revisions/shop/1/VERSION && echo 'READ its own revision'\n")
	probe.WriteString("echo \"key=$API_KEY\"\necho ENV; env | sort\n")
	hooks := "hooks:\n  validate_service: [{ run: ./hooks/probe.sh }]\nparams: [/shop/API_KEY]\n"
	shopSpec := ownSpec("shop", e.prod, e.test, hooks)
	// The hook finds the data directory by its name, as an attacker would.
	files := map[string]string{"hooks/probe.sh": strings.Replace(probe.String(), "\"$DATA\"", strconv.Quote(e.data), 1)}

	// Asking for root is refused, naming the line, before anything runs.
	_, err = deployer.UploadRevision(ctx, bytes.NewReader((e.bundle("root", ownSpec("shop", e.prod, e.test, "run_as: root\n"), nil))), "root")
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Message, "bluegreen.yaml:19:9: run_as: this server does not let apps run as root (uid 0)") {
		t.Fatalf("a revision with run_as: root: %v, want a 400 naming run_as", err)
	}

	rev, err = deployer.UploadRevision(ctx, bytes.NewReader((e.bundle("shop1", shopSpec, files))), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if d, err = deployer.Deploy(ctx, "shop", rev.Generation); err != nil {
		t.Fatal(err)
	}
	if d = e.waitEnd(d.ID, 60*time.Second); d.Outcome != "succeeded" {
		t.Fatalf("shop: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}

	for _, f := range targets {
		if !strings.HasPrefix(f, "/") {
			if _, err := os.Stat(filepath.Join(e.data, f)); err != nil {
				t.Fatalf("the hook's target is not there: %v", err)
			}
		}
	}
	// What the hook could do, as its deployer reads it.
	output := hookOutput(t, deployer, d.ID)
	t.Logf("the hook's output:\n%s", output)
	for _, f := range targets {
		if !strings.Contains(output, "DENIED "+f+"\n") {
			t.Errorf("the hook read %s", f)
		}
	}
	for _, want := range []string{"DENIED listing revisions/blog", "DENIED listing router", "DENIED listing .",
		"shop1\nREAD its own revision", "key=[redacted]\n", "API_KEY=[redacted]\n"} {
		if !strings.Contains(output, want) {
			t.Errorf("the hook's output lacks %q", want)
		}
	}
	m := regexp.MustCompile(`hook uid=(\d+) gid=(\d+) groups=(\d+)\n`).FindStringSubmatch(output)
	if m == nil || m[1] == "0" || m[1] != m[2] || m[2] != m[3] {
		t.Fatalf("the hook ran as %v; want a user of its own, not root, with no other group", m)
	}
	hookUID := m[1]
	envNames := map[string]bool{}
	_, env, _ := strings.Cut(output, "ENV\n")
	for line := range strings.Lines(env) {
		name, _, _ := strings.Cut(line, "=")
		envNames[name] = true
		switch {
		case strings.HasPrefix(name, "BG_"), name == "API_KEY":
		case name == "PATH", name == "HOME", name == "PWD", name == "SHLVL", name == "_", name == "OLDPWD",
			name == "LANG", name == "LC_ALL", name == "TZ", name == "TMPDIR":
		default:
			t.Errorf("the hook's environment has %s", strings.TrimSpace(line))
		}
	}
	if !envNames["API_KEY"] || !envNames["BG_APP"] {
		t.Errorf("the hook lacks its own params and BG_ variables: %v", envNames)
	}

	// The instances run as the same user, not root, and not blog's.
	shop, err := e.api.Instances(ctx, "shop")
	if err != nil || len(shop) != 2 {
		t.Fatalf("shop's instances: %v, %v", shop, err)
	}
	blogUID := procUID(t, blog[0].PID)
	for _, in := range shop {
		if uid := procUID(t, in.PID); uid != hookUID || uid == blogUID {
			t.Errorf("instance %s runs as uid %s; want its app's uid %s (blog has %s)", in.ID, uid, hookUID, blogUID)
		}
	}
	if blogUID == "0" {
		t.Errorf("blog's instance runs as root")
	}

	// Nothing the API serves, to anyone, holds the secrets.
	for name, c := range map[string]*api.Client{"admin": e.api, "deployer": deployer, "viewer": viewer} {
		for _, in := range shop {
			out := ""
			testwait.For(t, 10*time.Second, "instance "+in.ID+"'s first line", func() bool {
				out, err = c.Logs(ctx, "shop", in.ID, 0)
				return err == nil && strings.Contains(out, "app key=")
			})
			if !strings.Contains(out, "app key=[redacted] uid="+hookUID+"\n") {
				t.Errorf("%s reads instance %s's output as %q", name, in.ID, out)
			}
			leaks(t, name+" reading the logs of "+in.ID, out, secret, adminToken)
		}
		evs, err := c.Events(ctx, "", "", 0, false)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(evs)
		leaks(t, name+" reading the events", string(b), secret, adminToken)
	}

	// Viewers see that the hook ran, not what it printed.
	evs, err := viewer.Events(ctx, "", d.ID, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	seen := false
	for _, ev := range evs {
		if strings.HasPrefix(ev.Kind, "hook.") {
			seen = true
			if _, ok := ev.Fields["output"]; ok || ev.Fields["output_hidden"] != true {
				t.Errorf("a viewer reads the hook event %s with fields %v", ev.Kind, ev.Fields)
			}
		}
	}
	if !seen {
		t.Error("a viewer sees no hook event")
	}

	// On disk: the server's files closed, shop's revision open to shop's
	// user alone.
	for name, want := range map[string]os.FileMode{".": 0o711, "admin.token": 0o600, "params.key": 0o600, "bluegreen.db": 0o600,
		"bundles": 0o700, "instances": 0o700, "router": 0o700, "revisions": 0o711, "revisions/shop": 0o711, "revisions/shop/1": 0o750} {
		info, err := os.Stat(filepath.Join(e.data, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("DATA/%s: mode %04o, want %04o", name, got, want)
		}
	}
	info, err := os.Stat(filepath.Join(e.data, "revisions", "shop", "1"))
	if err != nil {
		t.Fatal(err)
	}
	if gid := info.Sys().(*syscall.Stat_t).Gid; strconv.Itoa(int(gid)) != hookUID {
		t.Errorf("DATA/revisions/shop/1 has group %d, want shop's %s", gid, hookUID)
	}
}

// hookOutput is the output of a deployment's one hook run, as c reads it.
func hookOutput(t *testing.T, c *api.Client, deployment string) string {
	t.Helper()
	evs, err := c.Events(context.Background(), "", deployment, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if strings.HasPrefix(ev.Kind, "hook.") {
			out, _ := ev.Fields["output"].(string)
			return out
		}
	}
	t.Fatalf("deployment %s has no hook event", deployment)
	return ""
}

func leaks(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s shows a secret (%.6s…)", what, s)
		}
	}
}

// A server that is not root cannot run apps as anyone else: asking it to
// stops it at once, saying why, rather than running them as itself.
func TestServerNotRootRefusesRunAs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to start the server as nobody")
	}
	dir := passableTempDir(t)
	binary := filepath.Join(dir, "bluegreen")
	b, err := os.ReadFile(bin.bluegreen)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(binary, b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, runAs := range []string{"root", "dynamic"} {
		cmd := exec.Command(binary, "server", "--data", filepath.Join(dir, "data"), "--api", "127.0.0.1:0", "--run-as", runAs)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || !strings.Contains(string(out), "--run-as "+runAs+": the server runs as nobody (uid 65534), not root") {
			t.Errorf("server --run-as %s as nobody: %v\n%s", runAs, err, out)
		}
		if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
			t.Errorf("server --run-as %s as nobody made its data directory before refusing", runAs)
		}
	}
}

// An app may name its user where the server allows it; once the server no
// longer does, deploying that revision again is refused, naming run_as.
func TestRunAsChoiceNeedsTheServersLeave(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the server must run as root to run apps as other users")
	}
	e := &deployEnv{t: t, data: filepath.Join(passableTempDir(t), "data"), prod: freeAddr(t), test: freeAddr(t), binary: bin.bluegreen,
		args: []string{"--allow-run-as", "nobody"}}
	t.Cleanup(e.teardown)
	e.startServer()
	ctx := context.Background()
	d := e.deploy("v1", ownSpec("shop", e.prod, e.test, "run_as: nobody\n"), nil)
	if d = e.waitEnd(d.ID, 60*time.Second); d.Outcome != "succeeded" {
		t.Fatalf("v1: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	for _, in := range e.instances() {
		if uid := procUID(t, in.PID); uid != "65534" {
			t.Errorf("instance %s runs as uid %s, want nobody's 65534", in.ID, uid)
		}
	}

	e.killServer()
	e.args = nil
	e.startServer()
	_, err := e.api.Deploy(ctx, "shop", 1)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Message, "run_as: this server does not let apps run as nobody (uid 65534)") {
		t.Fatalf("deploying a revision whose run_as is no longer allowed: %v, want a 400 naming run_as", err)
	}
}
