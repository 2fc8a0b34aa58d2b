package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"bluegreen/internal/api"
)

// benchApp is one of the apps registered.
type benchApp struct {
	name     string // "s0042"
	host     string // its host on the shared listeners
	deployed int64  // the last revision uploaded
}

func appName(i int) string { return fmt.Sprintf("s%04d", i) }

// spec is an app's bluegreen.yaml: the benchmark's app, run from where
// every app's user can reach it (the bundle carries only the spec: a
// thousand copies of a binary would measure the disk, not the server),
// served by host on listeners every app shares, switched all at once, blue
// stopped as soon as green has the traffic.
func (e *benchEnv) spec(a *benchApp) string {
	return fmt.Sprintf(`app: %s
process:
  command: [%q]
  instances: %d
router:
  production: %s
  test: %s
  hosts: [%q]
strategy:
  preset: AllAtOnce
bake: 0s
retire:
  keep_blue: 0s
`, a.name, e.app, e.o.Instances, e.prod, e.test, a.host)
}

// bundle packs the spec and a VERSION of its own, so every revision differs.
func (e *benchEnv) bundle(a *benchApp, version string) ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range []struct{ name, data string }{{"bluegreen.yaml", e.spec(a)}, {"VERSION", version + "\n"}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(f.data)); err != nil {
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

// upload makes the app's next revision. The server receives two uploads at
// a time and queues two: a busy answer is waited out.
func (e *benchEnv) upload(ctx context.Context, a *benchApp) (int64, error) {
	version := fmt.Sprintf("v%d", a.deployed+1)
	b, err := e.bundle(a, version)
	if err != nil {
		return 0, err
	}
	for {
		rev, err := e.api.UploadRevision(ctx, bytes.NewReader(b), version)
		var ae *api.Error
		if errors.As(err, &ae) && ae.Status == 503 {
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("uploading %s %s: %w", a.name, version, err)
		}
		a.deployed = rev.Generation
		return rev.Generation, nil
	}
}

// each runs fn for every app, n at a time, and returns the first error.
func each(ctx context.Context, apps []*benchApp, n int, fn func(context.Context, *benchApp) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, a := range apps {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, a); err != nil {
				cancel(err)
			}
		}()
	}
	wg.Wait()
	return context.Cause(ctx)
}

// outcome is how one deployment ended, from its events.
type outcome struct {
	app     string
	created time.Time
	ended   time.Time
	phase   string // Succeeded, RolledBack or Failed
	reason  string
}

// deployWave uploads a new revision of every app, deploys them, parallel
// deployments at a time (the next starts when one ends), and waits until
// every deployment has ended,
// following the event stream. It returns how long each took (from the
// server's times of its creation and its end), sorted, and the wall time
// from the first deploy call to the last end. A deployment that does not
// succeed is an error.
func (e *benchEnv) deployWave(ctx context.Context, apps []*benchApp, parallel int, timeout time.Duration) (waveResult, error) {
	if err := each(ctx, apps, 4, func(ctx context.Context, a *benchApp) error {
		_, err := e.upload(ctx, a)
		return err
	}); err != nil {
		return waveResult{}, err
	}
	after, err := e.lastSeq(ctx)
	if err != nil {
		return waveResult{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	w := &wave{ids: map[string]*benchApp{}, ended: map[string]outcome{}, ends: map[string]chan struct{}{}, allIn: make(chan struct{})}
	follow := make(chan error, 1)
	go func() {
		for {
			err := e.api.StreamEvents(wctx, "", "", after, func(ev api.Event) error {
				after = ev.Seq
				return w.see(ev)
			})
			if errors.Is(err, errWaveDone) || wctx.Err() != nil {
				follow <- err
				return
			}
			// The stream broke: follow on from the last event seen.
			select {
			case <-wctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	err = each(wctx, apps, parallel, func(ctx context.Context, a *benchApp) error {
		d, err := e.api.Deploy(ctx, a.name, a.deployed)
		if err != nil {
			return fmt.Errorf("deploying %s revision %d: %w", a.name, a.deployed, err)
		}
		// The next app's deployment starts when this one has ended.
		select {
		case <-w.started(d.ID, a):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if err != nil {
		return waveResult{}, err
	}
	w.mu.Lock()
	close(w.allIn)
	finished := w.countDone() == len(w.ids)
	w.mu.Unlock()
	if !finished {
		if err := <-follow; !errors.Is(err, errWaveDone) {
			w.mu.Lock()
			n := len(w.ids) - w.countDone()
			w.mu.Unlock()
			return waveResult{}, fmt.Errorf("%d of %d deployments had not ended after %s: %v", n, len(apps), timeout, err)
		}
	}
	res := waveResult{Wall: time.Since(start)}
	w.mu.Lock()
	defer w.mu.Unlock()
	slowest, longest := "", time.Duration(0)
	for id := range w.ids {
		o := w.ended[id]
		if o.phase != "Succeeded" {
			reason := o.reason
			if d, err := e.api.Deployment(ctx, id); err == nil {
				reason = d.Reason
			}
			res.Failed = append(res.Failed, fmt.Sprintf("%s of %s ended %s: %s", id, o.app, o.phase, reason))
			if len(res.Failed) == 1 {
				res.FailedEvents = e.timeline(ctx, id)
			}
			continue
		}
		d := o.ended.Sub(o.created)
		res.Took = append(res.Took, d)
		if d >= longest {
			slowest, longest = id, d
		}
	}
	slices.Sort(res.Took)
	if slowest != "" {
		res.Slowest = e.timeline(ctx, slowest)
	}
	return res, nil
}

// waveResult is what a wave of deployments took.
type waveResult struct {
	Took         []time.Duration // of each that succeeded, sorted
	Wall         time.Duration   // the first deploy call to the last end
	Slowest      []string        // the slowest that succeeded, event by event
	Failed       []string        // why each of the others did not succeed
	FailedEvents []string        // the first of those, event by event
}

// timeline is a deployment's events, each at its time from the first:
// where the time of the slowest deployment of a wave went.
func (e *benchEnv) timeline(ctx context.Context, id string) []string {
	evs, err := e.api.Events(ctx, "", id, 0, false)
	if err != nil || len(evs) == 0 {
		return nil
	}
	var out []string
	for _, ev := range evs {
		out = append(out, fmt.Sprintf("%+9.1fms %-18s %s", float64(ev.Time.Sub(evs[0].Time))/float64(time.Millisecond), ev.Kind, ev.Message))
	}
	return out
}

// wave is what a wave of deployments knows of them as their events come.
type wave struct {
	mu    sync.Mutex
	ids   map[string]*benchApp     // the deployments started, by ID
	ended map[string]outcome       // by deployment ID
	ends  map[string]chan struct{} // closed when the deployment has ended
	allIn chan struct{}            // closed once every deployment is started
}

// started records a deployment started and returns what is closed once it
// has ended (at once if its end was seen already).
func (w *wave) started(id string, a *benchApp) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ids[id] = a
	return w.endOf(id)
}

// endOf is the channel closed at id's end. The caller holds w.mu.
func (w *wave) endOf(id string) chan struct{} {
	ch := w.ends[id]
	if ch == nil {
		ch = make(chan struct{})
		w.ends[id] = ch
		if w.ended[id].phase != "" {
			close(ch)
		}
	}
	return ch
}

// see takes in one event; errWaveDone says every deployment has ended.
func (w *wave) see(ev api.Event) error {
	p, _ := ev.Fields["phase"].(string)
	w.mu.Lock()
	defer w.mu.Unlock()
	o := w.ended[ev.DeploymentID]
	switch {
	case ev.Kind == "deployment.created":
		o.app, o.created = ev.App, ev.Time
	case ev.Kind == "phase" && (p == "Succeeded" || p == "RolledBack" || p == "Failed"):
		if o.phase != "" {
			return nil // seen already
		}
		o.app, o.ended, o.phase, o.reason = ev.App, ev.Time, p, ev.Message
		w.ended[ev.DeploymentID] = o
		if ch := w.ends[ev.DeploymentID]; ch != nil {
			close(ch)
		}
	default:
		return nil
	}
	w.ended[ev.DeploymentID] = o
	select {
	case <-w.allIn:
		if w.countDone() == len(w.ids) {
			return errWaveDone
		}
	default:
	}
	return nil
}

// countDone counts the deployments started that have ended.
func (w *wave) countDone() int {
	n := 0
	for id := range w.ids {
		if w.ended[id].phase != "" {
			n++
		}
	}
	return n
}

var errWaveDone = errors.New("every deployment ended")

// lastSeq is the sequence number of the latest event, to follow from.
func (e *benchEnv) lastSeq(ctx context.Context) (int64, error) {
	var after int64
	for {
		evs, err := e.api.Events(ctx, "", "", after, false)
		if err != nil {
			return 0, err
		}
		if len(evs) == 0 {
			return after, nil
		}
		after = evs[len(evs)-1].Seq
	}
}
