package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/server"
	"bluegreen/internal/testdocker"
	"bluegreen/internal/testwait"
)

// deployEnv is one bluegreen server over its own data directory, with the
// production and test listeners of its app on free ports.
type deployEnv struct {
	t          *testing.T
	data       string
	prod, test string // listener addresses of the app "shop"
	srv        *exec.Cmd
	srvDone    chan struct{}
	srvLog     *lockedBuffer
	api        *api.Client
	binary     string // the bluegreen binary the server runs
	args       []string
	env        []string // more environment of the server and the CLI (DOCKER_HOST)
	// docker is the engine the server runs containers on, and image the
	// image its specs name, for the tests of the Docker platform.
	docker *testdocker.Engine
	image  string
}

func newDeployEnv(t *testing.T) *deployEnv {
	t.Helper()
	return startDeployEnv(t, bin.bluegreen)
}

// newRaceDeployEnv runs the server built with the race detector (about
// three times slower), for the tests whose requests race with the engine's
// own work: restarts, aborts, rollbacks.
func newRaceDeployEnv(t *testing.T) *deployEnv {
	t.Helper()
	return startDeployEnv(t, bin.bluegreenRace)
}

func startDeployEnv(t *testing.T, binary string, opts ...func(*deployEnv)) *deployEnv {
	t.Helper()
	// These scenarios are about deployments, and their hooks write to the
	// test's own directories: apps run as root, which must be asked for.
	// security_run_test.go runs the default, a user of each app's own.
	e := &deployEnv{t: t, data: filepath.Join(t.TempDir(), "data"), prod: freeAddr(t), test: freeAddr(t), binary: binary,
		args: []string{"--run-as", "root"}}
	for _, o := range opts {
		o(e)
	}
	t.Cleanup(e.teardown)
	e.startServer()
	return e
}

// startServer starts `bluegreen server` and waits until its API answers.
func (e *deployEnv) startServer() {
	t := e.t
	t.Helper()
	_ = os.Remove(filepath.Join(e.data, "server.json"))
	e.srvLog = &lockedBuffer{}
	cmd := exec.Command(e.binary, append([]string{"server", "--data", e.data, "--api", "127.0.0.1:0", "--log-format", "json"}, e.args...)...)
	cmd.Env = append(os.Environ(), e.env...)
	cmd.Stdout, cmd.Stderr = e.srvLog, e.srvLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.srv, e.srvDone = cmd, make(chan struct{})
	done := e.srvDone
	go func() { _ = cmd.Wait(); close(done) }()
	var info server.Info
	testwait.For(t, 30*time.Second, "the server to answer", func() bool {
		select {
		case <-done:
			t.Fatalf("the server exited:\n%s", e.srvLog.String())
		default:
		}
		in, err := server.ReadInfo(e.data)
		if err != nil || in.PID != cmd.Process.Pid {
			return false
		}
		info = in
		// The server writes its admin token before it listens.
		token, err := os.ReadFile(filepath.Join(e.data, "admin.token"))
		if err != nil {
			return false
		}
		c := api.NewClient(info.API)
		c.Token = strings.TrimSpace(string(token))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = c.App(ctx, "none")
		var ae *api.Error
		if errors.As(err, &ae) && ae.Status == 404 {
			e.api = c
			return true
		}
		return false
	})
}

// killServer kills the server with SIGKILL, as a crash would.
func (e *deployEnv) killServer() {
	e.t.Helper()
	_ = e.srv.Process.Signal(syscall.SIGKILL)
	<-e.srvDone
}

// teardown stops the server, then everything it left running.
func (e *deployEnv) teardown() {
	if e.srv != nil {
		_ = e.srv.Process.Signal(syscall.SIGKILL)
		<-e.srvDone
	}
	stop := exec.Command(bin.bluegreen, "server", "--stop-all", "--data", e.data)
	stop.Env = append(os.Environ(), e.env...)
	out, err := stop.CombinedOutput()
	if err != nil {
		e.t.Errorf("stop-all: %v\n%s", err, out)
	}
	if strings.Contains(e.srvLog.String(), "WARNING: DATA RACE") {
		e.t.Errorf("the race detector reported a data race in the server")
	}
	if e.t.Failed() {
		e.t.Logf("server log:\n%s", e.srvLog.String())
	}
}

// specParts are what tests vary in a spec.
type specParts struct {
	env     string // process env as a YAML flow mapping, e.g. { HELLO_LATENCY: 100ms }
	startup string // health.startup_timeout (10s when empty)
	health  string // health.path (/healthz when empty)
	router  string // more lines of the router section
	extra   string // top-level sections after the shared ones
	run     string // more lines of the process (or docker) section, indented
}

// spec fills the parts of a spec every test shares: the app, its command
// and its listeners, and a health check fast enough for tests.
func (e *deployEnv) spec(p specParts) string {
	env := "{}"
	if p.env != "" {
		env = p.env
	}
	startup := "10s"
	if p.startup != "" {
		startup = p.startup
	}
	health := "/healthz"
	if p.health != "" {
		health = p.health
	}
	run := fmt.Sprintf(`process:
  command: ["./hello"]
  instances: 2
  env: %s
  stop_timeout: 5s
%s`, env, p.run)
	if e.image != "" {
		run = fmt.Sprintf(`platform: docker
docker:
  image: %s
  instances: 2
  env: %s
  stop_timeout: 5s
%s`, e.image, env, p.run)
	}
	// Health checks of containers get more time: on a loaded machine a
	// container's answer can take longer than 100ms, and two late answers
	// would take a healthy instance out of the fleet.
	check := "100ms"
	if e.image != "" {
		check = "300ms"
	}
	return fmt.Sprintf(`app: shop
%srouter:
  production: %s
  test: %s
%shealth:
  path: %s
  interval: %s
  timeout: %s
  healthy_threshold: 1
  unhealthy_threshold: 2
  startup_timeout: %s
%s`, run, e.prod, e.test, p.router, health, check, check, startup, p.extra)
}

// specFor is spec with only extra sections.
func (e *deployEnv) specFor(extra string) string { return e.spec(specParts{extra: extra}) }

// bundle makes a .tar.gz of hello, its VERSION, the spec and extra files
// (executable when their name starts with "hooks/").
func (e *deployEnv) bundle(version, spec string, files map[string]string) []byte {
	t := e.t
	t.Helper()
	prog, err := os.ReadFile(bin.hello)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	add := func(name string, mode int64, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	add("hello", 0o755, prog)
	add("VERSION", 0o644, []byte(version+"\n"))
	add("bluegreen.yaml", 0o644, []byte(spec))
	for name, body := range files {
		mode := int64(0o644)
		if strings.HasPrefix(name, "hooks/") {
			mode = 0o755
		}
		add(name, mode, []byte(body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// deploy uploads a revision and starts its deployment.
func (e *deployEnv) deploy(version, spec string, files map[string]string) api.Deployment {
	t := e.t
	t.Helper()
	ctx := context.Background()
	rev, err := e.api.UploadRevision(ctx, bytes.NewReader(e.bundle(version, spec, files)), version)
	if err != nil {
		t.Fatalf("uploading %s: %v", version, err)
	}
	d, err := e.api.Deploy(ctx, rev.App, rev.Generation)
	if err != nil {
		t.Fatalf("deploying %s: %v", version, err)
	}
	return d
}

// waitPhase waits until the deployment is in one of the phases (or ended).
func (e *deployEnv) waitPhase(id string, timeout time.Duration, phases ...string) api.Deployment {
	e.t.Helper()
	var d api.Deployment
	testwait.For(e.t, timeout, "deployment "+id+" to reach "+strings.Join(phases, " or "), func() bool {
		var err error
		d, err = e.api.Deployment(context.Background(), id)
		if err != nil {
			return false
		}
		for _, p := range phases {
			if d.Phase == p {
				return true
			}
		}
		if d.Outcome != "" {
			e.t.Fatalf("deployment %s ended %s in %s (%s) while waiting for %v\n%s", id, d.Outcome, d.Phase, d.Reason, phases, e.eventLog(id))
		}
		return false
	})
	return d
}

// waitEnd waits until the deployment has an outcome.
func (e *deployEnv) waitEnd(id string, timeout time.Duration) api.Deployment {
	e.t.Helper()
	var d api.Deployment
	testwait.For(e.t, timeout, "deployment "+id+" to end", func() bool {
		var err error
		d, err = e.api.Deployment(context.Background(), id)
		return err == nil && d.Outcome != ""
	})
	return d
}

func (e *deployEnv) events(id string) []api.Event {
	e.t.Helper()
	evs, err := e.api.Events(context.Background(), "", id, 0, false)
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

// eventLog prints a deployment's events, for failure messages.
func (e *deployEnv) eventLog(id string) string {
	evs, err := e.api.Events(context.Background(), "", id, 0, false)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "  %s %-18s %s\n", ev.Time.Format("15:04:05.000"), ev.Kind, ev.Message)
	}
	return b.String()
}

// instances lists the app's instances.
func (e *deployEnv) instances() []api.Instance {
	e.t.Helper()
	ins, err := e.api.Instances(context.Background(), "shop")
	if err != nil {
		e.t.Fatal(err)
	}
	return ins
}

// load is bgload running as its own process against the production listener.
type load struct {
	t       *testing.T
	cmd     *exec.Cmd
	out     *lockedBuffer
	records string
	done    chan struct{}
}

type loadRecord struct {
	start, end time.Time
	status     int
	version    string
}

// startLoad runs bgload against url; more are more of its flags (-host).
func startLoad(t *testing.T, url string, rate int, more ...string) *load {
	t.Helper()
	l := &load{t: t, out: &lockedBuffer{}, records: filepath.Join(t.TempDir(), "records.txt"), done: make(chan struct{})}
	args := append([]string{"-url", url, "-rate", strconv.Itoa(rate), "-duration", "5m",
		"-c", "16", "-header", "X-Version", "-records", l.records}, more...)
	l.cmd = exec.Command(bin.bgload, args...)
	l.cmd.Stdout = l.out
	l.cmd.Stderr = l.out
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = l.cmd.Wait(); close(l.done) }()
	t.Cleanup(func() { _ = l.cmd.Process.Kill(); <-l.done })
	return l
}

// stop ends the load and returns its records.
func (l *load) stop() []loadRecord {
	l.t.Helper()
	_ = l.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-l.done:
	case <-time.After(30 * time.Second):
		l.t.Fatal("bgload did not stop")
	}
	f, err := os.Open(l.records)
	if err != nil {
		l.t.Fatal(err)
	}
	defer f.Close()
	var recs []loadRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var s, en int64
		var r loadRecord
		if _, err := fmt.Sscanf(sc.Text(), "%d %d %d %s", &s, &en, &r.status, &r.version); err != nil {
			l.t.Fatalf("record %q: %v", sc.Text(), err)
		}
		r.start, r.end = time.Unix(0, s), time.Unix(0, en)
		recs = append(recs, r)
	}
	if len(recs) == 0 {
		l.t.Fatalf("no load records; bgload said: %s", l.out.String())
	}
	return recs
}

// failures lists the records without a 2xx/3xx answer.
func failures(recs []loadRecord) []loadRecord {
	var out []loadRecord
	for _, r := range recs {
		if r.status < 200 || r.status >= 400 {
			out = append(out, r)
		}
	}
	return out
}

// summary is a one-line account of records, for messages.
func summary(recs []loadRecord) string {
	by := map[string]int{}
	for _, r := range recs {
		by[fmt.Sprintf("%d/%s", r.status, r.version)]++
	}
	b, _ := json.Marshal(by)
	return fmt.Sprintf("%d requests: %s", len(recs), b)
}
