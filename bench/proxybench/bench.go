package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"
)

// contender is one thing wrk is pointed at: a proxy process, or a backend
// itself for the "direct" ceiling (proc is nil then).
type contender struct {
	name string
	url  string
	proc *proc
}

// runResult is one wrk run against one contender.
type runResult struct {
	Workload    string `json:"workload"`
	Proxy       string `json:"proxy"`
	Connections int    `json:"connections"`
	Round       int    `json:"round"`
	wrkResult
	ErrorsTotal int64 `json:"errors"`
	// ProxyCPU is nil for the direct row, which has no proxy.
	ProxyCPU   *float64 `json:"proxy_cpu_us_per_req"`
	BackendCPU float64  `json:"backend_cpu_us_per_req"`
	// OtherCPUPct is the CPU used by processes outside the benchmark during
	// the run, in percent of all cores.
	OtherCPUPct float64 `json:"other_cpu_pct"`
}

type bench struct {
	opts     options
	procs    *procSet
	clk      float64 // clock ticks per second
	backends []*proc
	ports    map[string]int
	active   []*contender
	failures map[string]string // contender → why it was not (fully) measured
	runs     []runResult
	wrkLog   *os.File
	scripts  map[string]string // workload → wrk script ("" for none)
}

// starter launches one proxy in front of backends b1 and b2 and returns the
// process and the URL to load.
type starter func(b *bench, ctx context.Context) (*proc, string, error)

var starters = map[string]starter{
	"direct":    nil,
	"haproxy":   startHAProxy,
	"nginx":     startNginx,
	"revproxy":  startRevProxy,
	"bluegreen": startBluegreen,
}

func (b *bench) setup(ctx context.Context) error {
	names := []string{"b1", "b2", "haproxy", "nginx", "revproxy", "bg-admin", "bg-production", "bg-test"}
	ports, err := freePorts(len(names))
	if err != nil {
		return fmt.Errorf("choosing ports: %w", err)
	}
	b.ports = map[string]int{}
	for i, n := range names {
		b.ports[n] = ports[i]
	}
	backend := filepath.Join(b.opts.out, "backend")
	for _, n := range []string{"b1", "b2"} {
		addr := "127.0.0.1:" + strconv.Itoa(b.ports[n])
		p, err := b.procs.start("backend "+n, filepath.Join(b.opts.out, "backend-"+n+".log"), backend, "-addr", addr, "-name", n)
		if err != nil {
			return err
		}
		if err := waitReady(ctx, p, "http://"+addr+"/", 10*time.Second); err != nil {
			return fmt.Errorf("backend %s: %w", n, err)
		}
		b.backends = append(b.backends, p)
	}
	fmt.Printf("backends on 127.0.0.1:%d and 127.0.0.1:%d\n", b.ports["b1"], b.ports["b2"])

	for _, name := range b.opts.proxies {
		c := &contender{name: name}
		if start := starters[name]; start == nil {
			c.url = fmt.Sprintf("http://127.0.0.1:%d/", b.ports["b1"])
		} else {
			p, url, err := start(b, ctx)
			if err == nil {
				err = waitReady(ctx, p, url, 15*time.Second)
			}
			if err != nil {
				if p != nil {
					p.stop()
				}
				b.failures[name] = "did not start: " + err.Error()
				fmt.Printf("%-10s FAILED to start: %v\n", name, err)
				continue
			}
			c.proc, c.url = p, url
		}
		fmt.Printf("%-10s %s\n", name, c.url)
		b.active = append(b.active, c)
	}
	b.scripts = map[string]string{workloadGet: ""}
	script, err := filepath.Abs(filepath.Join(b.opts.out, "post.lua"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(script, []byte(postScript(b.opts.postBytes)), 0o644); err != nil {
		return err
	}
	b.scripts[workloadPost] = script
	f, err := os.Create(filepath.Join(b.opts.out, "wrk.log"))
	if err != nil {
		return err
	}
	b.wrkLog = f
	return ctx.Err()
}

func startHAProxy(b *bench, ctx context.Context) (*proc, string, error) {
	bin, err := systemBinary("haproxy")
	if err != nil {
		return nil, "", err
	}
	cfg := filepath.Join(b.opts.out, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(haproxyConfig(b.ports["haproxy"], b.ports["b1"], b.ports["b2"])), 0o644); err != nil {
		return nil, "", err
	}
	p, err := b.procs.start("haproxy", filepath.Join(b.opts.out, "haproxy.log"), bin, "-f", cfg, "-db")
	return p, fmt.Sprintf("http://127.0.0.1:%d/", b.ports["haproxy"]), err
}

func startNginx(b *bench, ctx context.Context) (*proc, string, error) {
	bin, err := systemBinary("nginx")
	if err != nil {
		return nil, "", err
	}
	dir, err := filepath.Abs(filepath.Join(b.opts.out, "nginx"))
	if err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	cfg := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cfg, []byte(nginxConfig(dir, b.ports["nginx"], b.ports["b1"], b.ports["b2"])), 0o644); err != nil {
		return nil, "", err
	}
	p, err := b.procs.start("nginx", filepath.Join(b.opts.out, "nginx.log"), bin,
		"-p", dir+"/", "-e", filepath.Join(dir, "error.log"), "-c", cfg, "-g", "daemon off;")
	return p, fmt.Sprintf("http://127.0.0.1:%d/", b.ports["nginx"]), err
}

func startRevProxy(b *bench, ctx context.Context) (*proc, string, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", b.ports["revproxy"])
	backends := fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d", b.ports["b1"], b.ports["b2"])
	p, err := b.procs.start("revproxy", filepath.Join(b.opts.out, "revproxy.log"),
		filepath.Join(b.opts.out, "revproxy"), "-addr", addr, "-backends", backends)
	return p, "http://" + addr + "/", err
}

func startBluegreen(b *bench, ctx context.Context) (*proc, string, error) {
	if _, err := os.Stat(b.opts.bluegreen); err != nil {
		return nil, "", fmt.Errorf("no bluegreen binary at %s (did the build fail? see %s)",
			b.opts.bluegreen, filepath.Join(b.opts.out, "build-bluegreen.log"))
	}
	cfg := filepath.Join(b.opts.out, "routes.yaml")
	routes := routesConfig(b.ports["bg-admin"], b.ports["bg-production"], b.ports["bg-test"], b.ports["b1"], b.ports["b2"])
	if err := os.WriteFile(cfg, []byte(routes), 0o644); err != nil {
		return nil, "", err
	}
	p, err := b.procs.start("bluegreen", filepath.Join(b.opts.out, "bluegreen.log"),
		b.opts.bluegreen, "router", "--config", cfg)
	return p, fmt.Sprintf("http://127.0.0.1:%d/", b.ports["bg-production"]), err
}

// measure runs the warm-up, then the rounds. Each round visits every
// contender once per workload and connection count, starting one further along
// the list than the round before, so slow drift in the machine hits all of
// them alike.
func (b *bench) measure(ctx context.Context) error {
	defer b.wrkLog.Close()
	if b.opts.warmup > 0 {
		fmt.Printf("\nwarm-up: %ds per proxy, workload and connection count (not recorded)\n", b.opts.warmup)
		for _, c := range b.active {
			for _, w := range b.opts.workloads {
				for _, conns := range b.opts.conns {
					if _, _, err := runWrk(ctx, b.opts.threads, conns, b.opts.warmup, c.url, b.scripts[w]); ctx.Err() != nil {
						return ctx.Err()
					} else if err != nil {
						fmt.Printf("  %s %s warm-up at %d connections: %v\n", c.name, w, conns, err)
					}
				}
			}
		}
	}
	total := b.opts.rounds * len(b.opts.workloads) * len(b.opts.conns) * len(b.active)
	fmt.Printf("\n%d runs of %ds (wrk -t%d, workloads %v, connections %v, %d rounds)\n",
		total, b.opts.seconds, b.opts.threads, b.opts.workloads, b.opts.conns, b.opts.rounds)
	for round := 1; round <= b.opts.rounds; round++ {
		for _, w := range b.opts.workloads {
			for _, conns := range b.opts.conns {
				order := b.alive()
				n := len(order)
				for i := range n {
					c := order[(i+round-1)%n]
					if err := b.measureOne(ctx, c, w, conns, round); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// alive lists the contenders that have not failed.
func (b *bench) alive() []*contender {
	var out []*contender
	for _, c := range b.active {
		if _, failed := b.failures[c.name]; !failed {
			out = append(out, c)
		}
	}
	return out
}

// measureOne runs wrk once and takes the CPU of the proxy's process tree and
// of the backends over exactly that run. Only a cancelled context is returned
// as an error; a contender that breaks is recorded and dropped.
func (b *bench) measureOne(ctx context.Context, c *contender, workload string, conns, round int) error {
	fail := func(why string) {
		b.failures[c.name] = fmt.Sprintf("round %d, %s, %d connections: %s", round, workload, conns, why)
		fmt.Printf("  round %d  %-4s c=%-4d %-10s FAILED: %s\n", round, workload, conns, c.name, why)
	}
	var proxyBefore map[int]uint64
	if c.proc != nil {
		var err error
		if proxyBefore, err = treeTicks(c.proc.pid()); err != nil {
			fail(fmt.Sprintf("%v; log: %s", err, c.proc.tail()))
			return nil
		}
	}
	backBefore := b.backendTicks()
	busyBefore, _ := machineBusyTicks()
	started := time.Now()
	out, wrkCPU, err := runWrk(ctx, b.opts.threads, conns, b.opts.seconds, c.url, b.scripts[workload])
	elapsed := time.Since(started)
	busyAfter, _ := machineBusyTicks()
	backAfter := b.backendTicks()
	var proxyAfter map[int]uint64
	if c.proc != nil {
		proxyAfter, _ = treeTicks(c.proc.pid())
	}
	fmt.Fprintf(b.wrkLog, "=== %s %s round %d connections %d\n%s\n", c.name, workload, round, conns, out)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		fail(err.Error())
		return nil
	}
	if c.proc != nil && !c.proc.running() {
		fail(fmt.Sprintf("process exited (%v): %s", c.proc.waitErr, c.proc.tail()))
		return nil
	}
	res, err := parseWrk(out)
	if err != nil || res.Requests == 0 {
		fail(fmt.Sprintf("no requests completed (%v)", err))
		return nil
	}
	r := runResult{Workload: workload, Proxy: c.name, Connections: conns, Round: round, wrkResult: res, ErrorsTotal: res.Errors()}
	perReq := func(ticks uint64) float64 { return float64(ticks) / b.clk * 1e6 / float64(res.Requests) }
	var backTicks uint64
	for i := range backAfter {
		backTicks += ticksDelta(backBefore[i], backAfter[i])
	}
	r.BackendCPU = perReq(backTicks)
	cpu := "-"
	var proxyTicks uint64
	if c.proc != nil {
		proxyTicks = ticksDelta(proxyBefore, proxyAfter)
		v := perReq(proxyTicks)
		r.ProxyCPU = &v
		cpu = fmt.Sprintf("%.1f", v)
	}
	// What the machine's processes used beyond this benchmark's own, as a
	// share of all cores: a noise gauge for a shared machine.
	ours := float64(proxyTicks+backTicks)/b.clk + wrkCPU.Seconds()
	other := (float64(busyAfter-busyBefore)/b.clk - ours) / (elapsed.Seconds() * float64(runtime.NumCPU())) * 100
	r.OtherCPUPct = math.Max(0, other)
	b.runs = append(b.runs, r)
	fmt.Printf("  round %d  %-4s c=%-4d %-10s %9.0f req/s  p50 %6.2f ms  p99 %7.2f ms  proxy %5s µs/req  errors %d  other load %.0f%%\n",
		round, workload, conns, c.name, res.ReqPerSec, res.P50Ms, res.P99Ms, cpu, r.ErrorsTotal, r.OtherCPUPct)
	return nil
}

func (b *bench) backendTicks() []map[int]uint64 {
	out := make([]map[int]uint64, len(b.backends))
	for i, p := range b.backends {
		out[i], _ = treeTicks(p.pid())
	}
	return out
}
