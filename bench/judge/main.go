// Command judge measures the statistical judge of deployments with real
// processes: a bluegreen server, the example app (hello, whose latency is
// a setting) and load from a separate process. It deploys a green
// identical to blue N times and counts the deployments the judge wrongly
// rolled back (false positives), then deploys a green slower than blue M
// times and counts the check intervals the judge took to roll it back.
// See bench/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type options struct {
	runs, slowRuns   int
	rate             int
	latency          time.Duration
	slowdown         float64
	interval         time.Duration
	weight           int
	failureLimit     int
	confidence       float64
	minSamples       int
	maxSlowdown      float64
	maxErrorIncrease float64
	keep             bool
}

func main() {
	var o options
	flag.IntVar(&o.runs, "runs", 20, "deployments of a green identical to blue")
	flag.IntVar(&o.slowRuns, "slow-runs", 5, "deployments of a slower green")
	flag.IntVar(&o.rate, "rate", 200, "requests a second to the production listener")
	flag.DurationVar(&o.latency, "latency", 18*time.Millisecond, "blue's latency per request (HELLO_LATENCY)")
	flag.Float64Var(&o.slowdown, "slowdown", 1.3, "how many times blue's latency the slower green takes")
	flag.DurationVar(&o.interval, "interval", 3*time.Second, "checks.interval")
	flag.IntVar(&o.weight, "weight", 50, "green's weight in the canary step, held for two and a half intervals")
	flag.IntVar(&o.failureLimit, "failure-limit", 2, "checks.failure_limit")
	flag.Float64Var(&o.confidence, "confidence", 0.99, "the judge's confidence")
	flag.IntVar(&o.minSamples, "min-samples", 100, "the judge's min_samples")
	flag.Float64Var(&o.maxSlowdown, "max-slowdown", 1.1, "the judge's max_slowdown")
	flag.Float64Var(&o.maxErrorIncrease, "max-error-increase", 0.01, "the judge's max_error_increase")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directory and logs")
	flag.Parse()
	if o.runs < 1 || o.slowRuns < 0 || o.rate < 1 || o.interval < time.Second || o.weight < 1 || o.weight > 99 {
		fmt.Fprintln(os.Stderr, "judge: -runs ≥ 1, -slow-runs ≥ 0, -rate ≥ 1, -interval ≥ 1s and -weight 1..99 please")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "judge:", err)
		os.Exit(1)
	}
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
		return "", fmt.Errorf("run from the bluegreen checkout (go run ./bench/judge): %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

func run(ctx context.Context, o options) error {
	src, err := moduleRoot()
	if err != nil {
		return err
	}
	fmt.Printf("building and starting a server…\n")
	e, err := start(ctx, src)
	if e != nil {
		defer func() {
			e.stop()
			if o.keep {
				fmt.Printf("kept: %s\n", e.dir)
			} else {
				os.RemoveAll(e.dir)
			}
		}()
	}
	if err != nil {
		return err
	}
	slow := time.Duration(float64(o.latency) * o.slowdown).Round(time.Microsecond)
	spec := func(lat time.Duration) string { return o.spec(e.prod, e.test, lat) }
	if _, _, err := e.deploy(ctx, "v1", spec(o.latency), 2*time.Minute); err != nil {
		return err
	}
	perRun := 10*o.interval + time.Minute
	if err := e.startLoad(o.rate, time.Duration(o.runs+o.slowRuns)*perRun+time.Minute); err != nil {
		return err
	}
	// Blue serves a full interval before the first switch.
	if err := sleep(ctx, o.interval+time.Second); err != nil {
		return err
	}
	fmt.Printf("%d requests a second; blue %s a request; checks every %s, failure_limit %d; canary %d %% for two and a half intervals, then 100 %% and a bake of two\n",
		o.rate, o.latency, o.interval, o.failureLimit, o.weight)
	fmt.Printf("judge: { confidence: %g, min_samples: %d, max_slowdown: %g, max_error_increase: %g }\n\n", o.confidence, o.minSamples, o.maxSlowdown, o.maxErrorIncrease)

	version := 1
	var same []outcome
	for i := range o.runs {
		version++
		d, evs, err := e.deploy(ctx, fmt.Sprintf("v%d", version), spec(o.latency), perRun)
		if err != nil {
			return err
		}
		oc := analyse(d, evs)
		same = append(same, oc)
		fmt.Printf("identical %2d/%d: %s\n", i+1, o.runs, oc.line())
	}
	var slower []outcome
	for i := range o.slowRuns {
		version++
		d, evs, err := e.deploy(ctx, fmt.Sprintf("v%d", version), spec(slow), perRun)
		if err != nil {
			return err
		}
		oc := analyse(d, evs)
		slower = append(slower, oc)
		fmt.Printf("slower    %2d/%d: %s\n", i+1, o.slowRuns, oc.line())
	}
	report(o, slow, same, slower)
	return nil
}

// spec is the app's spec with blue's or green's latency.
func (o options) spec(prod, test string, latency time.Duration) string {
	return fmt.Sprintf(`app: bench
process:
  command: ["./hello"]
  instances: 2
  env: { HELLO_LATENCY: %s }
  stop_timeout: 5s
router:
  production: %s
  test: %s
health:
  path: /healthz
  interval: 200ms
  timeout: 200ms
  healthy_threshold: 1
  startup_timeout: 30s
strategy:
  steps:
    - { weight: %d, pause: %s }
    - { weight: 100 }
checks:
  interval: %s
  failure_limit: %d
  min_requests: 50
  rules:
    - judge: { confidence: %g, min_samples: %d, max_slowdown: %g, max_error_increase: %g }
bake: %s
retire:
  keep_blue: 0s
  drain_timeout: 2s
`, latency, prod, test, o.weight, 2*o.interval+o.interval/2, o.interval, o.failureLimit, o.confidence, o.minSamples, o.maxSlowdown, o.maxErrorIncrease, 2*o.interval)
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
