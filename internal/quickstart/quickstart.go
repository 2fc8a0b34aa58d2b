// Package quickstart is `bluegreen quickstart`: a real blue/green
// deployment on this machine, from nothing, in about a minute. It builds
// the example app, starts a server over a fresh data directory, deploys v1,
// drives steady traffic from a separate process, deploys v2 with a canary
// strategy while showing its progress, and prints what the traffic saw.
// On the docker platform v1 and v2 are images built on the engine, and v2
// is deployed the way a CI job deploys a pushed image (deploy --image).
package quickstart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/freeport"
	"bluegreen/internal/loadgen"
	"bluegreen/internal/platform"
	"bluegreen/internal/platform/docker"
	"bluegreen/internal/server"
)

// Options configure a run.
type Options struct {
	// Self is the bluegreen binary: it runs the server and the load.
	Self string
	// Source is the root of the bluegreen module, where examples/hello is
	// built from.
	Source string
	// Dir holds everything the run creates (a new temporary directory
	// when empty).
	Dir string
	// Keep leaves the server, the router and the app running at the end.
	Keep bool
	// Rate is the steady load in requests per second.
	Rate int
	// Platform is where the app runs: PlatformProcess (the default) or
	// PlatformDocker.
	Platform string
	Out      io.Writer
}

// The platforms the quickstart runs on.
const (
	PlatformProcess = "process"
	PlatformDocker  = "docker"
)

// Platforms lists the values Options.Platform takes.
var Platforms = []string{PlatformProcess, PlatformDocker}

// Summary is what the run measured.
type Summary struct {
	Requests  int
	Failed    int
	ByVersion map[string]int
	// Steps are green's weights with when they were set, from the events.
	Steps []Step
	// Switch is from green's first production request to 100 %.
	Switch     time.Duration
	Outcome    string
	Production string
	Test       string
	API        string
	DataDir    string
	// Platform is the platform the app ran on.
	Platform string
	// Images are the images the revisions pinned (the docker platform).
	Images []Pinned
	// Engine is the Docker engine's address (the docker platform).
	Engine string
}

// Pinned is the image a revision pinned when it was created.
type Pinned struct {
	Revision int64
	Ref      string
	ID       string
}

// Step is one traffic change.
type Step struct {
	At     time.Time
	Weight int
}

// run is one quickstart in progress.
type run struct {
	o        Options
	data     string
	app      string
	prod     string
	test     string
	api      *api.Client
	server   *exec.Cmd
	srvDone  chan error
	load     *exec.Cmd
	loadDone chan error
	records  string
	// docker is the engine's platform, with the images built on it and
	// the ones the revisions pinned (the docker platform only).
	docker *docker.Platform
	built  map[string]platform.Image // by version
	pinned []Pinned
}

// Run does the whole quickstart. Whatever happens, everything it started
// is stopped at the end unless o.Keep (and then only after a success).
func Run(ctx context.Context, o Options) (s Summary, err error) {
	if o.Rate <= 0 {
		o.Rate = 100
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Platform == "" {
		o.Platform = PlatformProcess
	}
	r := &run{o: o, app: "hello"}
	switch o.Platform {
	case PlatformProcess:
	case PlatformDocker:
		// Before anything starts: without an engine there is nothing to do.
		if r.docker, err = OpenDocker(ctx); err != nil {
			return s, err
		}
		defer r.docker.Close()
	default:
		return s, fmt.Errorf("unknown platform %q (want %s)", o.Platform, strings.Join(Platforms, " or "))
	}
	if o.Dir == "" {
		if o.Dir, err = os.MkdirTemp("", "bluegreen-quickstart-"); err != nil {
			return s, err
		}
		// Passable (not listable): as root, the app runs as a user of its
		// own, which must reach its revision in the data directory below.
		if err = os.Chmod(o.Dir, 0o711); err != nil {
			return s, err
		}
	}
	r.o = o
	r.data, r.records = filepath.Join(o.Dir, "data"), filepath.Join(o.Dir, "requests.txt")
	defer func() {
		if err != nil || !o.Keep {
			r.stopAll()
		}
	}()
	type step struct {
		what string
		fn   func(context.Context) error
	}
	steps := []step{
		{"build the example app", r.build},
		{"start the server", r.startServer},
		{"deploy v1", func(ctx context.Context) error { _, err := r.deployBundle(ctx, "v1", specV1); return err }},
		{"start the traffic", r.startLoad},
	}
	deployV2 := func(ctx context.Context) (api.Deployment, error) { return r.deployBundle(ctx, "v2", specV2) }
	canary := "canary 10 % → 50 % → 100 %, checking error rate and latency against v1"
	if o.Platform == PlatformDocker {
		steps = []step{
			{"build the example app as a static binary", r.build},
			{"build the images " + imageRef("v1") + " and " + imageRef("v2") + " on the Docker engine at " + r.engine(), r.buildImages},
			{"start the server", r.startServer},
			{"deploy v1: a spec with platform docker and image " + imageRef("v1"), func(ctx context.Context) error { _, err := r.deployImageSpec(ctx); return err }},
			{"start the traffic", r.startLoad},
		}
		deployV2 = func(ctx context.Context) (api.Deployment, error) { return r.deployImage(ctx, "v2") }
		canary = "the step after docker build and docker push: bluegreen deploy --image " + imageRef("v2") + " hello\n  " + canary
	}
	for _, st := range steps {
		fmt.Fprintf(o.Out, "→ %s\n", st.what)
		if err := st.fn(ctx); err != nil {
			return s, fmt.Errorf("%s: %w", st.what, err)
		}
	}
	fmt.Fprintf(o.Out, "→ deploy v2: %s\n", canary)
	d, err := deployV2(ctx)
	if err != nil {
		return s, fmt.Errorf("deploy v2: %w", err)
	}
	// Let v2 serve alone for a moment, so the summary shows it.
	if err := sleep(ctx, 2*time.Second); err != nil {
		return s, err
	}
	recs, err := r.stopLoad()
	if err != nil {
		return s, fmt.Errorf("the traffic: %w", err)
	}
	return r.summarize(ctx, d, recs)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// build compiles examples/hello into the bundle directory.
func (r *run) build(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(r.o.Source, "examples", "hello", "main.go")); err != nil {
		return fmt.Errorf("examples/hello not found under %s: run the quickstart from a bluegreen checkout (go run ./cmd/bluegreen quickstart)", r.o.Source)
	}
	out := filepath.Join(r.o.Dir, "hello")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./examples/hello")
	cmd.Dir = r.o.Source
	if r.o.Platform == PlatformDocker {
		// A FROM scratch image has no C library to link against.
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./examples/hello: %v\n%s", err, b)
	}
	return nil
}

// startServer starts `bluegreen server` over a fresh data directory, with
// the app's listeners and the API on free loopback ports.
func (r *run) startServer(ctx context.Context) error {
	var err error
	for _, p := range []*string{&r.prod, &r.test} {
		if *p, err = freeport.Addr(); err != nil {
			return err
		}
	}
	apiAddr, err := freeport.Addr()
	if err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(r.o.Dir, "server.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(r.o.Self, "server", "--data", r.data, "--api", apiAddr, "--log-format", "json")
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: Ctrl-C reaches the quickstart, which then
	// stops everything in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	r.server, r.srvDone = cmd, make(chan error, 1)
	go func() { r.srvDone <- cmd.Wait() }()
	r.api = api.NewClient(apiAddr)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if tok, err := os.ReadFile(filepath.Join(r.data, "admin.token")); err == nil {
			r.api.Token = strings.TrimSpace(string(tok))
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := r.api.Events(cctx, "", "", 0, false)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case err := <-r.srvDone:
			b, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("the server exited (%v):\n%s", err, tail(string(b), 2000))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("the server did not answer within 30s (see server.log)")
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// startLoad runs the load generator as its own process.
func (r *run) startLoad(ctx context.Context) error {
	cmd := exec.Command(r.o.Self, "load", "-url", "http://"+r.prod+"/", "-rate", fmt.Sprint(r.o.Rate),
		"-duration", "10m", "-c", "16", "-header", "X-Version", "-records", r.records)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	r.load, r.loadDone = cmd, make(chan error, 1)
	go func() { r.loadDone <- cmd.Wait() }()
	fmt.Fprintf(r.o.Out, "  %d requests a second to http://%s/ from a separate process\n", r.o.Rate, r.prod)
	return nil
}

// stopLoad stops the load (requests in flight finish) and reads what it saw.
func (r *run) stopLoad() ([]loadgen.Record, error) {
	if r.load == nil {
		return nil, errors.New("the traffic never started")
	}
	_ = r.load.Process.Signal(syscall.SIGINT)
	select {
	case <-r.loadDone:
	case <-time.After(30 * time.Second):
		_ = r.load.Process.Kill()
		<-r.loadDone
	}
	r.load = nil
	return loadgen.ReadRecords(r.records)
}

// stopAll stops the load, the server, then what the server left running.
func (r *run) stopAll() {
	if r.load != nil {
		_ = r.load.Process.Kill()
		<-r.loadDone
		r.load = nil
	}
	if r.server != nil {
		_ = r.server.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.srvDone:
		case <-time.After(15 * time.Second):
			_ = r.server.Process.Kill()
			<-r.srvDone
		}
		r.server = nil
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// The server's containers too: StopAll finds the engine as the
		// server did, through DOCKER_HOST.
		if _, err := server.StopAll(ctx, server.StopAllOptions{DataDir: r.data, RouterCommand: []string{r.o.Self, "router"}, ShimCommand: []string{r.o.Self, "instance-shim"}}); err != nil {
			fmt.Fprintf(r.o.Out, "could not stop everything the server left running: %v\n", err)
		}
	}
}
