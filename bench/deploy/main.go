// Command deploy measures what a deployment itself costs on the Docker
// platform (and, with -platforms, on the Kubernetes test cluster) against
// the process platform, for the same static binary of
// examples/hello: time from launch to healthy and time of a whole
// AllAtOnce deployment, side by side in one run, beside the app's own start
// time measured directly (no bluegreen in between). See bench/README.md.
//
// It starts a private Docker engine, builds the app and its FROM scratch
// image offline, runs a real `bluegreen server` over a fresh data
// directory, deploys, prints a table of medians and ratios, writes
// results.json, and stops everything it started: on success, on failure
// and on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"bluegreen/bench/cpuload"
)

// options are the benchmark's settings.
type options struct {
	Runs      int
	Instances int
	Platforms []string
	Health    []string
	Out       string
	Bluegreen string
	// Root is the checkout the app and bluegreen are built from.
	Root string `json:"-"`
}

func main() {
	var o options
	var platforms, health string
	flag.IntVar(&o.Runs, "runs", 3, "measured deployments per platform and health setting")
	flag.IntVar(&o.Instances, "instances", 2, "instances per fleet")
	flag.StringVar(&platforms, "platforms", "process,docker", "platforms to measure (comma-separated)")
	flag.StringVar(&health, "health", "default,fast", "health settings to measure: default (the spec's defaults: interval 2s, healthy_threshold 2) and fast (interval 50ms)")
	flag.StringVar(&o.Out, "out", "", "directory for the binaries, the server's log and results.json (default bench/out/deploy of the checkout)")
	flag.StringVar(&o.Bluegreen, "bluegreen", "", "a bluegreen binary to measure instead of one built from ./cmd/bluegreen")
	flag.Parse()
	o.Platforms, o.Health = splitList(platforms), splitList(health)
	if err := o.check(); err != nil {
		fmt.Fprintf(os.Stderr, "deploy bench: %v\n", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := run(ctx, o)
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "deploy bench: interrupted; everything it started is stopped")
		os.Exit(130)
	case err != nil:
		fmt.Fprintf(os.Stderr, "deploy bench: %v\n", err)
		os.Exit(1)
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func (o options) check() error {
	if o.Runs < 1 {
		return fmt.Errorf("-runs must be at least 1, got %d", o.Runs)
	}
	if o.Instances < 1 || o.Instances > 20 {
		return fmt.Errorf("-instances must be 1 to 20, got %d", o.Instances)
	}
	if len(o.Platforms) == 0 {
		return errors.New("-platforms names none")
	}
	for _, p := range o.Platforms {
		if p != platformProcess && p != platformDocker && p != platformKubernetes {
			return fmt.Errorf("-platforms: unknown platform %q (want process, docker or kubernetes)", p)
		}
	}
	if len(o.Health) == 0 {
		return errors.New("-health names none")
	}
	for _, h := range o.Health {
		if _, ok := healthSections[h]; !ok {
			return fmt.Errorf("-health: unknown setting %q (want default or fast)", h)
		}
	}
	return nil
}

// checkout is the root of the bluegreen module the benchmark runs in.
func checkout(ctx context.Context) (string, error) {
	b, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	mod := strings.TrimSpace(string(b))
	if err != nil || mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run it inside the bluegreen checkout (go run ./bench/deploy): go env GOMOD says %q (%v)", mod, err)
	}
	return filepath.Dir(mod), nil
}

// run sets up, measures and reports; cleanup runs whatever happens.
func run(ctx context.Context, o options) (err error) {
	if o.Root, err = checkout(ctx); err != nil {
		return err
	}
	if o.Out == "" {
		o.Out = filepath.Join(o.Root, "bench", "out", "deploy")
	}
	if o.Out, err = filepath.Abs(o.Out); err != nil {
		return err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return err
	}
	env := &benchEnv{o: o, kamalLive: map[string][]started{}}
	defer func() {
		if cerr := env.close(); cerr != nil {
			fmt.Fprintf(os.Stderr, "deploy bench: cleaning up: %v\n", cerr)
			if err == nil {
				err = cerr
			}
		}
	}()
	idle := cpuload.Sample(ctx, time.Second)
	if err := env.setUp(ctx); err != nil {
		return err
	}
	res, err := measure(ctx, env)
	if err != nil {
		return err
	}
	res.IdleLoad = idle
	res.Versions = env.versions(ctx)
	res.print(os.Stdout)
	return res.write(filepath.Join(o.Out, "results.json"))
}
