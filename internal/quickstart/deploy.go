package quickstart

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/loadgen"
)

// The example's specs: v1 goes live at once; v2 moves through a canary,
// checked against v1, then blue stays warm briefly and drains.
const (
	specProcess = `app: hello
process:
  command: ["./hello"]
  instances: 2
  stop_timeout: 10s
`
	specRouting = `router:
  production: %s
  test: %s
health:
  path: /healthz
  interval: 250ms
  timeout: 250ms
  healthy_threshold: 1
  startup_timeout: 30s
`
	specV1 = `bake: 0s
retire:
  keep_blue: 0s
`
	specV2 = `strategy:
  steps:
    - { weight: 10, pause: 10s }
    - { weight: 50, pause: 10s }
    - { weight: 100 }
checks:
  interval: 5s
  failure_limit: 2
  min_requests: 20
  rules:
    - error_rate: { max: 0.01 }
    - latency_p99: { max_vs_blue: 3 }
bake: 5s
retire:
  keep_blue: 5s
  drain_timeout: 10s
`
)

// bundleFile is a file of a bundle.
type bundleFile struct {
	name string
	mode int64
	data []byte
}

// bundle packs files as a .tar.gz.
func bundle(files []bundleFile) ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
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

// deployBundle uploads a version of the example app as a bundle (the
// program, its VERSION and its spec) and deploys it.
func (r *run) deployBundle(ctx context.Context, version, specTail string) (api.Deployment, error) {
	prog, err := os.ReadFile(filepath.Join(r.o.Dir, "hello"))
	if err != nil {
		return api.Deployment{}, err
	}
	spec := specProcess + fmt.Sprintf(specRouting, r.prod, r.test) + specTail
	b, err := bundle([]bundleFile{{"hello", 0o755, prog}, {"VERSION", 0o644, []byte(version + "\n")}, {"bluegreen.yaml", 0o644, []byte(spec)}})
	if err != nil {
		return api.Deployment{}, err
	}
	rev, err := r.api.UploadRevision(ctx, bytes.NewReader(b), version)
	if err != nil {
		return api.Deployment{}, err
	}
	return r.deploy(ctx, rev, "")
}

// deploy deploys a revision and follows its events until it ends;
// anything but success is an error. about is said of the revision.
func (r *run) deploy(ctx context.Context, rev api.Revision, about string) (api.Deployment, error) {
	d, err := r.api.Deploy(ctx, r.app, rev.Generation)
	if err != nil {
		return d, err
	}
	fmt.Fprintf(r.o.Out, "  revision %d%s, deployment %s\n", rev.Generation, about, d.ID)
	start := time.Now()
	var after int64
	for {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		evs, err := r.api.Events(wctx, "", d.ID, after, true)
		cancel()
		if ctx.Err() != nil {
			return d, ctx.Err()
		}
		if err == nil {
			for _, ev := range evs {
				after = ev.Seq
				if show(ev.Kind) {
					fmt.Fprintf(r.o.Out, "  %6.1fs  %-17s %s\n", ev.Time.Sub(start).Seconds(), phaseOf(ev), ev.Message)
				}
			}
		}
		if d, err = r.api.Deployment(ctx, d.ID); err != nil {
			return d, err
		}
		if d.Outcome != "" {
			if d.Outcome != "succeeded" {
				return d, fmt.Errorf("deployment %s %s: %s", d.ID, d.Outcome, d.Reason)
			}
			return d, nil
		}
	}
}

// show picks the events worth a line in the progress.
func show(kind string) bool {
	switch kind {
	case "phase", "traffic", "check", "drain", "hook.failed", "health.passed":
		return true
	}
	return false
}

func phaseOf(ev api.Event) string {
	if p, ok := ev.Fields["phase"].(string); ok {
		return p
	}
	return ""
}

// summarize reads the deployment's traffic steps and what the load saw.
func (r *run) summarize(ctx context.Context, d api.Deployment, recs []loadgen.Record) (Summary, error) {
	s := Summary{ByVersion: map[string]int{}, Outcome: d.Outcome, Production: "http://" + r.prod + "/",
		Test: "http://" + r.test + "/", API: r.api.Base, DataDir: r.data, Platform: r.o.Platform, Images: r.pinned}
	if r.docker != nil {
		s.Engine = r.engine()
	}
	for _, rec := range recs {
		s.Requests++
		if rec.Failed() {
			s.Failed++
		} else {
			s.ByVersion[rec.Value]++
		}
	}
	evs, err := r.api.Events(ctx, "", d.ID, 0, false)
	if err != nil {
		return s, err
	}
	for _, ev := range evs {
		if w, ok := ev.Fields["weight"].(float64); ok && ev.Kind == "traffic" {
			s.Steps = append(s.Steps, Step{At: ev.Time, Weight: int(w)})
		}
	}
	if n := len(s.Steps); n > 0 {
		s.Switch = s.Steps[n-1].At.Sub(s.Steps[0].At)
	}
	return s, nil
}

// Print writes the summary and what to try next.
func (s Summary) Print(o Options) {
	w := o.Out
	fmt.Fprintf(w, "\nSummary\n")
	fmt.Fprintf(w, "  requests served:  %d (%s)\n", s.Requests, versions(s.ByVersion))
	fmt.Fprintf(w, "  failed requests:  %d\n", s.Failed)
	if len(s.Steps) > 0 {
		fmt.Fprintf(w, "  traffic steps:   ")
		for i, st := range s.Steps {
			if i > 0 {
				fmt.Fprintf(w, ",")
			}
			fmt.Fprintf(w, " %d%% at +%.1fs", st.Weight, st.At.Sub(s.Steps[0].At).Seconds())
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "  switch took:      %.1fs from the first green request to 100 %%\n", s.Switch.Seconds())
	}
	for i, p := range s.Images {
		label := "images pinned:"
		if i > 0 {
			label = ""
		}
		fmt.Fprintf(w, "  %-16s  revision %d: %s (%s)\n", label, p.Revision, p.Ref, shortID(p.ID))
	}
	flags := ""
	if s.Platform == PlatformDocker {
		flags = " --platform docker"
	}
	if o.Keep {
		fmt.Fprintf(w, "\nStill running (--keep):\n")
		fmt.Fprintf(w, "  production  %s\n  test        %s\n  API         %s\n", s.Production, s.Test, s.API)
		fmt.Fprintf(w, "  dashboard   %s/ (log in with the token in %s)\n", s.API, filepath.Join(s.DataDir, "admin.token"))
		if s.Engine != "" {
			fmt.Fprintf(w, "  containers  on the Docker engine at %s\n", s.Engine)
		}
		fmt.Fprintf(w, "\nTry next:\n")
		fmt.Fprintf(w, "  curl -s %s\n", s.Production)
		fmt.Fprintf(w, "  bluegreen status hello --data %s\n", s.DataDir)
		if s.Platform == PlatformDocker {
			fmt.Fprintf(w, "  bluegreen history hello --data %s     # each revision's image and the ID it pinned\n", s.DataDir)
			fmt.Fprintf(w, "  bluegreen rollback hello --to 1 --data %s\n", s.DataDir)
		} else {
			fmt.Fprintf(w, "  bluegreen rollback hello --data %s\n", s.DataDir)
		}
		fmt.Fprintf(w, "  bluegreen events hello --data %s\n", s.DataDir)
		fmt.Fprintf(w, "Stop everything with: kill the server (pid in %s/server.json), then bluegreen server --stop-all --data %s\n", s.DataDir, s.DataDir)
		if s.Engine != "" {
			fmt.Fprintf(w, "  (with DOCKER_HOST naming the same engine: it stops the containers too)\n")
		}
	} else {
		fmt.Fprintf(w, "\nEverything the quickstart started is stopped. Run it with --keep to explore:\n")
		fmt.Fprintf(w, "  go run ./cmd/bluegreen quickstart%s --keep\n", flags)
	}
	if len(s.Images) > 0 {
		refs := make([]string, len(s.Images))
		for i, p := range s.Images {
			refs[i] = p.Ref
		}
		fmt.Fprintf(w, "The images stay on the engine for the next run; remove them with: docker rmi %s\n", strings.Join(refs, " "))
	}
}

func versions(m map[string]int) string {
	var parts []string
	for _, v := range []string{"v1", "v2"} {
		if n, ok := m[v]; ok {
			parts = append(parts, fmt.Sprintf("%d by %s", n, v))
		}
	}
	return strings.Join(parts, ", ")
}
