// Command proxybench measures the bluegreen router against HAProxy, nginx and a
// plain httputil.ReverseProxy, all in front of the same two Go backends on
// loopback. It drives each with wrk in interleaved rounds, with plain GETs and
// with POSTs of a small body, and reports req/s, latency and each proxy's CPU
// time per request. bench/run.sh builds and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

type options struct {
	out       string // working folder: configs, logs, results.json
	rounds    int
	seconds   int // per wrk run
	warmup    int // seconds per proxy and connection count, not recorded
	threads   int
	conns     []int
	workloads []string // workloadGet, workloadPost
	postBytes int      // body size of the POST workload
	proxies   []string
	maxCPU    float64 // target for the router, µs of CPU per plain request
	maxRatio  float64 // target for the router, CPU per request as a share of HAProxy's
	mustMeet  bool    // fail when the router misses a target
	bluegreen string  // path of the bluegreen binary
	profile   bool    // take CPU profiles of the router after the rounds
	tls       bool    // measure HAProxy, nginx and the router terminating TLS too
	plain     bool    // measure plain HTTP
}

func main() {
	var o options
	var conns, proxies, workloads string
	flag.StringVar(&o.out, "out", "bench/out", "folder for configs, logs and results.json")
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds")
	flag.IntVar(&o.seconds, "duration", 5, "seconds per wrk run")
	flag.IntVar(&o.warmup, "warmup", 1, "seconds of unrecorded warm-up per proxy and connection count (0: none)")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads")
	flag.StringVar(&conns, "conns", "64,256", "comma-separated wrk connection counts")
	flag.StringVar(&workloads, "workloads", "get,post", "comma-separated workloads: get (GET /, no body), post (POST / with a -post-bytes JSON body)")
	flag.IntVar(&o.postBytes, "post-bytes", 2048, "body size of the post workload, in bytes")
	flag.StringVar(&proxies, "proxies", "direct,haproxy,nginx,revproxy,bluegreen", "comma-separated contenders, in order")
	flag.Float64Var(&o.maxCPU, "target-us", 30, "router target: proxy CPU µs per plain (GET) request")
	flag.Float64Var(&o.maxRatio, "target-ratio", 0.7, "router target: CPU per request at most this times HAProxy's, p99 at most HAProxy's, in every table")
	flag.BoolVar(&o.mustMeet, "require-target", false, "exit 1 when the router misses a target")
	flag.StringVar(&o.bluegreen, "bluegreen", "", "bluegreen binary (default OUT/bluegreen)")
	flag.BoolVar(&o.profile, "profile", false, "after the rounds, save CPU profiles of the router to OUT/bluegreen-cC.pprof")
	flag.BoolVar(&o.tls, "tls", true, "also measure HTTPS (HTTP/1.1 keep-alive, a handshake per request, HTTP/2) for haproxy, nginx and bluegreen")
	flag.BoolVar(&o.plain, "plain", true, "measure plain HTTP (-plain=false: HTTPS only)")
	flag.Parse()

	for _, c := range strings.Split(conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "proxybench: bad -conns value %q\n", c)
			os.Exit(2)
		}
		o.conns = append(o.conns, n)
	}
	for _, w := range strings.Split(workloads, ",") {
		w = strings.TrimSpace(w)
		if w != workloadGet && w != workloadPost {
			fmt.Fprintf(os.Stderr, "proxybench: unknown workload %q (known: get, post)\n", w)
			os.Exit(2)
		}
		o.workloads = append(o.workloads, w)
	}
	if o.postBytes < 16 || o.postBytes > 1<<20 {
		fmt.Fprintln(os.Stderr, "proxybench: -post-bytes must be 16 to 1048576")
		os.Exit(2)
	}
	for _, p := range strings.Split(proxies, ",") {
		p = strings.TrimSpace(p)
		if _, ok := starters[p]; !ok {
			fmt.Fprintf(os.Stderr, "proxybench: unknown proxy %q (known: direct, haproxy, nginx, revproxy, bluegreen)\n", p)
			os.Exit(2)
		}
		o.proxies = append(o.proxies, p)
	}
	if o.rounds < 1 || o.seconds < 1 || o.threads < 1 {
		fmt.Fprintln(os.Stderr, "proxybench: -rounds, -duration and -threads must be at least 1")
		os.Exit(2)
	}
	if o.bluegreen == "" {
		o.bluegreen = filepath.Join(o.out, "bluegreen")
	}
	os.Exit(run(o))
}

func run(o options) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := os.MkdirAll(o.out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "proxybench:", err)
		return 1
	}
	procs := &procSet{pidFile: filepath.Join(o.out, "pids")}
	defer procs.stopAll()

	b := &bench{opts: o, procs: procs, clk: clockTicks(), failures: map[string]string{}}
	if err := b.setup(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "proxybench:", err)
		return 1
	}
	interrupted := false
	if o.plain {
		interrupted = b.measure(ctx) != nil
	}
	if !interrupted && o.profile {
		interrupted = b.profileRouter(ctx) != nil
	}
	var tlsRuns []tlsRun
	if !interrupted && o.tls {
		var err error
		tlsRuns, err = b.runTLS(ctx)
		interrupted = err != nil && ctx.Err() != nil
		if err != nil && !interrupted {
			b.failures["https"] = err.Error()
		}
	}
	procs.stopAll()

	rep := b.report(interrupted)
	rep.HTTPS = tlsRuns
	if o.plain {
		rep.print(os.Stdout)
	}
	printTLS(os.Stdout, tlsRuns, o.rounds, o.seconds)
	path := filepath.Join(o.out, "results.json")
	if err := rep.write(path); err != nil {
		fmt.Fprintln(os.Stderr, "proxybench: writing results:", err)
		return 1
	}
	fmt.Printf("\nresults: %s\n", path)
	switch {
	case interrupted:
		return 130
	case len(b.failures) > 0:
		return 1
	case o.mustMeet && !(rep.Target.Met && rep.Ratio.Met):
		return 1
	}
	return 0
}
