// Command scale measures one bluegreen server driving many apps: it
// registers -apps apps of -instances instances each (a tiny real HTTP
// server, bench/scale/app), deploys them -parallel at a time, then in each run
// reads the server's and the router's memory and idle CPU, the API's
// latency for an app's status and for the apps list, the store's size, the
// router's table swap, the dashboard's apps page in a real headless
// Chromium, the time of one deployment while every other app is there,
// and a wave of deployments of every app, -parallel at a time. See
// bench/README.md.
//
// It runs a real `bluegreen server` over a fresh data directory (as root,
// each app as a user of its own, as by default) and stops everything it
// started: on success, on failure and on Ctrl-C.
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
	"bluegreen/internal/platform/runas"
)

// options are the benchmark's settings.
type options struct {
	Apps      int
	Instances int
	Runs      int
	// Requests is how many status requests each run times (the apps
	// list gets a tenth as many).
	Requests int
	// Parallel is how many deployments a wave runs at once: the next
	// app's starts when one ends.
	Parallel int
	Browser  bool
	// RunAs is the server's --run-as ("": its default, a user of each
	// app's own).
	RunAs string
	// ShimPer is the server's --shim-per: "fleet" (one shim watches an
	// app's fleet of instances) or "instance" (a shim each).
	ShimPer   string
	Out       string
	Bluegreen string
	Root      string `json:"-"`
}

func main() {
	var o options
	flag.IntVar(&o.Apps, "apps", 1000, "apps to register")
	flag.IntVar(&o.Instances, "instances", 10, "instances per app")
	flag.IntVar(&o.Runs, "runs", 3, "measured runs")
	flag.IntVar(&o.Requests, "requests", 200, "status requests timed per run (the apps list gets a tenth as many)")
	flag.IntVar(&o.Parallel, "parallel", 25, "deployments a wave runs at once (the next app's starts when one ends)")
	flag.BoolVar(&o.Browser, "browser", true, "time the dashboard's apps page in headless Chromium (else its HTML and API calls over HTTP only)")
	flag.StringVar(&o.RunAs, "run-as", "", "the server's --run-as (default: its own default, a user of each app's own, which allows 606 apps; nobody for more apps)")
	flag.StringVar(&o.ShimPer, "shim-per", "fleet", "the server's --shim-per: fleet (one shim for each fleet's instances) or instance (a shim each: about 8 threads and 7 MB per instance)")
	flag.StringVar(&o.Out, "out", "", "directory for the binaries, the server's log and results.json (default bench/out/scale of the checkout)")
	flag.StringVar(&o.Bluegreen, "bluegreen", "", "a bluegreen binary to measure instead of one built from ./cmd/bluegreen")
	flag.Parse()
	if o.RunAs == "" && o.Apps > runas.DynamicLast-runas.DynamicFirst+1 {
		o.RunAs = "nobody" // more apps than the server has user IDs to give each its own
	}
	if err := o.check(); err != nil {
		fmt.Fprintf(os.Stderr, "scale bench: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := run(ctx, o)
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "scale bench: interrupted; everything it started is stopped")
		os.Exit(130)
	case err != nil:
		fmt.Fprintf(os.Stderr, "scale bench: %v\n", err)
		os.Exit(1)
	}
}

// maxInstances bounds apps × instances; checkRoom says whether the machine
// has room for them and their shims.
const maxInstances = 10000

func (o options) check() error {
	switch {
	case o.Apps < 1 || o.Apps > 10000:
		return fmt.Errorf("-apps must be 1 to 10000, got %d", o.Apps)
	case o.Instances < 1 || o.Instances > 20:
		return fmt.Errorf("-instances must be 1 to 20, got %d", o.Instances)
	case o.Apps*o.Instances > maxInstances:
		return fmt.Errorf("-apps × -instances is %d; at most %d", o.Apps*o.Instances, maxInstances)
	case o.ShimPer != "fleet" && o.ShimPer != "instance":
		return fmt.Errorf("-shim-per must be fleet or instance, got %q", o.ShimPer)
	case o.Runs < 1:
		return fmt.Errorf("-runs must be at least 1, got %d", o.Runs)
	case o.Requests < 10:
		return fmt.Errorf("-requests must be at least 10, got %d", o.Requests)
	case o.Parallel < 1:
		return fmt.Errorf("-parallel must be at least 1, got %d", o.Parallel)
	case (o.RunAs == "" || o.RunAs == runas.Dynamic) && o.Apps > runas.DynamicLast-runas.DynamicFirst+1:
		return fmt.Errorf("-apps %d: a server running as root gives each app a user ID of its own from %d to %d, %d in all; pass -run-as USER (say nobody) for more apps",
			o.Apps, runas.DynamicFirst, runas.DynamicLast, runas.DynamicLast-runas.DynamicFirst+1)
	}
	return nil
}

// checkout is the root of the bluegreen module the benchmark runs in.
func checkout(ctx context.Context) (string, error) {
	b, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	mod := strings.TrimSpace(string(b))
	if err != nil || mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run it inside the bluegreen checkout (go run ./bench/scale): go env GOMOD says %q (%v)", mod, err)
	}
	return filepath.Dir(mod), nil
}

// run sets up, measures and reports; cleanup runs whatever happens.
func run(ctx context.Context, o options) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("run it as root: the server runs each app as a user of its own, as it does by default")
	}
	if o.Root, err = checkout(ctx); err != nil {
		return err
	}
	if o.Out == "" {
		o.Out = filepath.Join(o.Root, "bench", "out", "scale")
	}
	if o.Out, err = filepath.Abs(o.Out); err != nil {
		return err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return err
	}
	if err := checkRoom(o); err != nil {
		return err
	}
	env := &benchEnv{o: o}
	defer func() {
		if cerr := env.close(); cerr != nil {
			fmt.Fprintf(os.Stderr, "scale bench: cleaning up: %v\n", cerr)
			if err == nil {
				err = cerr
			}
		}
	}()
	res := &results{Options: o, Machine: machine()}
	res.IdleLoad = cpuload.Sample(ctx, time.Second)
	if err := env.setUp(ctx); err != nil {
		return err
	}
	start := time.Now()
	if err := measure(ctx, env, res); err != nil {
		return err
	}
	res.Took = time.Since(start)
	res.Versions = env.versions(ctx)
	res.print(os.Stdout)
	return res.write(filepath.Join(o.Out, "results.json"))
}
