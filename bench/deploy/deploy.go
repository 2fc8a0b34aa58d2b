package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/freeport"
)

const (
	platformProcess    = "process"
	platformDocker     = "docker"
	platformKubernetes = "kubernetes"
)

// healthSections are the spec's health settings measured: the defaults
// (interval 2s, timeout 1s, healthy_threshold 2), where the check's own
// rhythm dominates, and a 50 ms interval, where what the platform costs
// shows.
var healthSections = map[string]string{
	"default": "",
	"fast":    "health:\n  interval: 50ms\n  timeout: 50ms\n",
}

// benchApp is one app of the benchmark: a platform and a health setting.
type benchApp struct {
	name       string // "docker-fast"
	platform   string
	health     string
	prod, test string // its listeners
	deployed   int    // deployments so far, for the revisions' VERSION
}

func (e *benchEnv) newApp(plat, health string) (*benchApp, error) {
	a := &benchApp{name: plat + "-" + health, platform: plat, health: health}
	for _, p := range []*string{&a.prod, &a.test} {
		var err error
		if *p, err = freeport.Addr(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// spec is the app's bluegreen.yaml: the same app on either platform, an
// AllAtOnce switch with no bake, and blue stopped as soon as green has all
// the traffic.
func (e *benchEnv) spec(a *benchApp) string {
	run := fmt.Sprintf("process:\n  command: [\"./hello\"]\n  instances: %d\n", e.o.Instances)
	switch a.platform {
	case platformDocker:
		run = fmt.Sprintf("platform: docker\ndocker:\n  image: %s\n  instances: %d\n", imageTag, e.o.Instances)
	case platformKubernetes:
		run = fmt.Sprintf("platform: kubernetes\nkubernetes:\n  image: %s\n  instances: %d\n  pull: never\n", kubeImageTag, e.o.Instances)
	}
	return fmt.Sprintf("app: %s\n%srouter:\n  production: %s\n  test: %s\n%sstrategy:\n  preset: AllAtOnce\nbake: 0s\nretire:\n  keep_blue: 0s\n",
		a.name, run, a.prod, a.test, healthSections[a.health])
}

// bundle packs the spec and a VERSION of its own (so that every revision
// differs), and for the process platform the app's binary; the Docker
// platform runs the image built from that same binary.
func (e *benchEnv) bundle(a *benchApp, version string) ([]byte, error) {
	files := []struct {
		name string
		mode int64
		data []byte
	}{{"bluegreen.yaml", 0o644, []byte(e.spec(a))}, {"VERSION", 0o644, []byte(version + "\n")}}
	if a.platform == platformProcess {
		prog, err := os.ReadFile(e.hello)
		if err != nil {
			return nil, err
		}
		files = append(files, struct {
			name string
			mode int64
			data []byte
		}{"hello", 0o755, prog})
	}
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// deployTimeout bounds one deployment: with the default health settings
// one takes a few seconds.
const deployTimeout = 2 * time.Minute

// deployRun is what one deployment took, from its events.
type deployRun struct {
	Deployment string `json:"deployment"`
	Revision   int64  `json:"revision"`
	// Upload is the API call that creates the revision: the bundle sent,
	// checked, stored and unpacked. It comes before the deployment.
	Upload time.Duration `json:"upload_ns"`
	// Total is from the API call to the deployment's success.
	Total time.Duration `json:"total_ns"`
	// Launch is from entering Provisioning to the last instance started
	// (the bundle unpacked, each instance launched in turn).
	Launch time.Duration `json:"launch_ns"`
	// ToHealthy is from the last instance started to every green
	// instance healthy (the router's checks passed).
	ToHealthy time.Duration `json:"to_healthy_ns"`
	// Finish is from green healthy to success: test route, switch,
	// blue fenced, drained and stopped.
	Finish time.Duration `json:"finish_ns"`
	// Retire is the Retiring phase alone: blue fenced, drained and its
	// instances stopped.
	Retire time.Duration `json:"retire_ns"`
	// Events are the deployment's events, with their times relative to
	// the API call: where the time went.
	Events []string `json:"events,omitempty"`
}

// LaunchToHealthy is from entering Provisioning to green healthy.
func (r deployRun) LaunchToHealthy() time.Duration { return r.Launch + r.ToHealthy }

// deploy uploads a new revision of the app, deploys it and waits for its
// end. A deployment that does not succeed is an error, with its events.
// The app's first deployment has no blue to retire, and no timings.
func (e *benchEnv) deploy(ctx context.Context, a *benchApp) (deployRun, error) {
	a.deployed++
	version := fmt.Sprintf("v%d", a.deployed)
	b, err := e.bundle(a, version)
	if err != nil {
		return deployRun{}, err
	}
	uploadAt := time.Now()
	rev, err := e.api.UploadRevision(ctx, bytes.NewReader(b), version)
	if err != nil {
		return deployRun{}, fmt.Errorf("uploading %s %s: %w", a.name, version, err)
	}
	upload := time.Since(uploadAt)
	ctx, cancel := context.WithTimeout(ctx, deployTimeout)
	defer cancel()
	called := time.Now()
	d, err := e.api.Deploy(ctx, a.name, rev.Generation)
	if err != nil {
		return deployRun{}, fmt.Errorf("deploying %s revision %d: %w", a.name, rev.Generation, err)
	}
	evs, err := e.waitEnd(ctx, d.ID)
	if err != nil {
		return deployRun{}, fmt.Errorf("%s deployment %s: %w", a.name, d.ID, err)
	}
	if a.deployed == 1 {
		return deployRun{Deployment: d.ID, Revision: rev.Generation}, nil
	}
	r, err := timings(called, evs)
	if err != nil {
		return deployRun{}, fmt.Errorf("%s deployment %s: %w\n%s", a.name, d.ID, err, eventLog(evs))
	}
	r.Deployment, r.Revision, r.Upload = d.ID, rev.Generation, upload
	for _, ev := range evs {
		r.Events = append(r.Events, fmt.Sprintf("%+8.1fms %-18s %s", float64(ev.Time.Sub(called))/float64(time.Millisecond), ev.Kind, ev.Message))
	}
	return r, nil
}

// waitEnd follows the deployment's events until it has an outcome, and
// returns them all; an outcome other than success is an error.
func (e *benchEnv) waitEnd(ctx context.Context, id string) ([]api.Event, error) {
	var evs []api.Event
	var after int64
	for {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		more, err := e.api.Events(wctx, "", id, after, true)
		cancel()
		if ctx.Err() != nil {
			return evs, fmt.Errorf("no outcome: %w\n%s", ctx.Err(), eventLog(evs))
		}
		if err == nil && len(more) > 0 {
			evs = append(evs, more...)
			after = more[len(more)-1].Seq
		}
		d, err := e.api.Deployment(ctx, id)
		if err != nil {
			return evs, err
		}
		if d.Outcome == "" {
			continue
		}
		if d.Outcome != "succeeded" {
			return evs, fmt.Errorf("%s in %s: %s\n%s", d.Outcome, d.Phase, d.Reason, eventLog(evs))
		}
		// The last events may have been written after the batch above.
		rest, err := e.api.Events(ctx, "", id, after, false)
		return append(evs, rest...), err
	}
}

// timings reads a deployment's durations from its events' times.
func timings(called time.Time, evs []api.Event) (deployRun, error) {
	var provisioning, launched, healthy, retiring, succeeded time.Time
	for _, ev := range evs {
		switch {
		case ev.Kind == "phase" && phaseOf(ev) == "Provisioning":
			provisioning = ev.Time
		case ev.Kind == "instance.launched":
			launched = ev.Time // the last one counts
		case ev.Kind == "health.passed":
			healthy = ev.Time
		case ev.Kind == "phase" && phaseOf(ev) == "Retiring":
			retiring = ev.Time
		case ev.Kind == "phase" && phaseOf(ev) == "Succeeded":
			succeeded = ev.Time
		}
	}
	for _, t := range []struct {
		what string
		at   time.Time
	}{{"entering Provisioning", provisioning}, {"an instance launched", launched}, {"green healthy", healthy}, {"entering Retiring", retiring}, {"success", succeeded}} {
		if t.at.IsZero() {
			return deployRun{}, fmt.Errorf("no event of %s", t.what)
		}
	}
	return deployRun{
		Total:     succeeded.Sub(called),
		Launch:    launched.Sub(provisioning),
		ToHealthy: healthy.Sub(launched),
		Finish:    succeeded.Sub(healthy),
		Retire:    succeeded.Sub(retiring),
	}, nil
}

func phaseOf(ev api.Event) string {
	p, _ := ev.Fields["phase"].(string)
	return p
}

// eventLog prints events, for error messages.
func eventLog(evs []api.Event) string {
	var b bytes.Buffer
	for _, ev := range evs {
		fmt.Fprintf(&b, "  %s %-18s %s\n", ev.Time.Format("15:04:05.000000"), ev.Kind, ev.Message)
	}
	return b.String()
}
