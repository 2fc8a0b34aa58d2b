package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"bluegreen/bench/cpuload"
	"bluegreen/internal/router"
	"bluegreen/internal/routerproc"
)

// waveTimeout bounds one wave of deployments of every app.
const waveTimeout = 30 * time.Minute

// idleWindow is how long the server's and the router's CPU is read while
// nothing is deployed: the upkeep of every app, the router's health checks.
const idleWindow = 10 * time.Second

// runResult is one run's figures.
type runResult struct {
	OtherLoad float64 `json:"other_load"` // the machine's busy share before the run, apps idle
	// Idle, over idleWindow with nothing deployed: CPU seconds per second.
	ServerIdleCPU    float64 `json:"server_idle_cpu"`
	RouterIdleCPU    float64 `json:"router_idle_cpu"`
	InstancesIdleCPU float64 `json:"instances_idle_cpu"`
	MachineIdleBusy  float64 `json:"machine_idle_busy"`
	// Memory.
	ServerRSS int64      `json:"server_rss_bytes"`
	RouterRSS int64      `json:"router_rss_bytes"`
	Instances fleetUsage `json:"instances"`
	StoreSize int64      `json:"store_bytes"`
	// The API, each request alone.
	Status []time.Duration `json:"status_ns"`
	Apps   []time.Duration `json:"apps_ns"`
	// The router's table: its size, reading it, and a swap of the same
	// table pushed again (parsed, checked, compiled and swapped in).
	TableBytes int             `json:"table_bytes"`
	TableRead  time.Duration   `json:"table_read_ns"`
	Swaps      []time.Duration `json:"swaps_ns"`
	// Patches is one app's routes sent alone (PATCH /routes), as the
	// server sends a change; none when the router has no PATCH /routes.
	Patches []time.Duration `json:"patches_ns"`
	// The dashboard's apps page, every card filled.
	Dashboard time.Duration `json:"dashboard_ns"`
	// One deployment while every other app is there, and its events.
	One       time.Duration `json:"one_ns"`
	OneEvents []string      `json:"one_events"`
	// A wave: every app deployed, Parallel at a time.
	Wave          []time.Duration `json:"wave_ns"`
	WaveWall      time.Duration   `json:"wave_wall_ns"`
	WaveServerCPU float64         `json:"wave_server_cpu"` // CPU seconds per second of the wave
	WaveRouterCPU float64         `json:"wave_router_cpu"`
	WaveLoad      float64         `json:"wave_load"`
	AfterRSS      int64           `json:"server_rss_after_wave_bytes"`
	// Slowest is the wave's slowest deployment, event by event.
	Slowest []string `json:"slowest"`
	// WaveFailed says why each deployment of the wave that did not
	// succeed ended; WaveFailedEvents are the first one's events.
	WaveFailed       []string `json:"wave_failed,omitempty"`
	WaveFailedEvents []string `json:"wave_failed_events,omitempty"`
}

// failedNote says how many deployments did not succeed, and the first's
// reason.
func failedNote(failed []string) string {
	if len(failed) == 0 {
		return ""
	}
	return fmt.Sprintf("; %d did not succeed (the first: %s)", len(failed), failed[0])
}

// measure registers every app (its first deployment, Parallel at a time), then
// runs: each reads the idle server, times the API, the router's swap and
// the dashboard, deploys one app alone, then every app again.
func measure(ctx context.Context, e *benchEnv, res *results) error {
	for i := range e.o.Apps {
		e.apps = append(e.apps, &benchApp{name: appName(i), host: appName(i) + ".scale.test"})
	}
	fmt.Printf("== registering %d apps × %d instances: every first deployment, %d at a time\n", e.o.Apps, e.o.Instances, e.o.Parallel)
	reg, err := e.deployWave(ctx, e.apps, e.o.Parallel, waveTimeout)
	if err != nil {
		return fmt.Errorf("registering: %w", err)
	}
	res.Register, res.RegisterWall, res.RegisterSlowest, res.RegisterFailed = reg.Took, reg.Wall, reg.Slowest, reg.Failed
	fmt.Printf("   %d apps live in %s (each deployment: median %s, slowest %s)%s\n", len(reg.Took), reg.Wall.Round(time.Millisecond),
		ms(pct(reg.Took, 50)), ms(pct(reg.Took, 100)), failedNote(reg.Failed))
	br, err := e.newBrowser(ctx)
	if err != nil {
		return err
	}
	defer br.close()
	for i := range e.o.Runs {
		r, err := e.runOnce(ctx, br, i)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		res.Runs = append(res.Runs, r)
	}
	return nil
}

func (e *benchEnv) runOnce(ctx context.Context, br *browser, i int) (runResult, error) {
	var r runResult
	r.OtherLoad = cpuload.Sample(ctx, time.Second)
	fmt.Printf("== run %d of %d (other load %.0f %%)\n", i+1, e.o.Runs, r.OtherLoad*100)
	srv := e.server.Process.Pid
	rtr, err := readPidFile(filepath.Join(e.data, "router", routerproc.PidFile))
	if err != nil {
		return r, fmt.Errorf("finding the router: %w", err)
	}

	// Idle: what upkeep and health checks cost at this size.
	s0, _ := cpuSeconds(srv)
	t0, _ := cpuSeconds(rtr)
	i0, _ := instanceUsage(e.bluegreen)
	m0 := cpuload.Read()
	select {
	case <-ctx.Done():
		return r, ctx.Err()
	case <-time.After(idleWindow):
	}
	s1, _ := cpuSeconds(srv)
	t1, _ := cpuSeconds(rtr)
	i1, err := instanceUsage(e.bluegreen)
	if err != nil {
		return r, err
	}
	r.MachineIdleBusy = cpuload.BusyShare(m0, cpuload.Read())
	secs := idleWindow.Seconds()
	r.ServerIdleCPU, r.RouterIdleCPU = (s1-s0)/secs, (t1-t0)/secs
	r.InstancesIdleCPU = (i1.ShimCPU + i1.AppCPU - i0.ShimCPU - i0.AppCPU) / secs
	r.Instances = i1
	if r.ServerRSS, err = rss(srv); err != nil {
		return r, err
	}
	if r.RouterRSS, err = rss(rtr); err != nil {
		return r, err
	}
	r.StoreSize = storeSize(filepath.Join(e.data, "bluegreen.db"))
	fmt.Printf("   idle: server %.1f %% of a core, router %.1f %%, instances %.1f %%; server %s, router %s, %d shims + %d apps %s PSS, %d threads\n",
		r.ServerIdleCPU*100, r.RouterIdleCPU*100, r.InstancesIdleCPU*100, mib(r.ServerRSS), mib(r.RouterRSS),
		r.Instances.Shims, r.Instances.Apps, mib(r.Instances.ShimPSS+r.Instances.AppPSS), r.Instances.Threads)

	if err := e.timeAPI(ctx, &r); err != nil {
		return r, err
	}
	fmt.Printf("   API: status p50 %s p99 %s; apps list p50 %s p99 %s; store %s\n",
		ms(pct(r.Status, 50)), ms(pct(r.Status, 99)), ms(pct(r.Apps, 50)), ms(pct(r.Apps, 99)), mib(r.StoreSize))
	if err := e.timeSwaps(ctx, &r); err != nil {
		return r, err
	}
	fmt.Printf("   router table: %s, read in %s, swapped in %s, one app patched in %s (median of %d)\n",
		mib(int64(r.TableBytes)), ms(r.TableRead), ms(pct(r.Swaps, 50)), ms(pct(r.Patches, 50)), len(r.Swaps))
	if r.Dashboard, err = br.appsPage(ctx, len(e.apps)); err != nil {
		return r, err
	}
	fmt.Printf("   dashboard: apps page with %d cards filled in %s (%s)\n", len(e.apps), ms(r.Dashboard), br.kind())

	one, err := e.deployWave(ctx, e.apps[:1], 1, waveTimeout)
	if err == nil && len(one.Failed) > 0 {
		err = fmt.Errorf("%s\n%s", one.Failed[0], strings.Join(one.FailedEvents, "\n"))
	}
	if err != nil {
		return r, fmt.Errorf("one deployment: %w", err)
	}
	r.One, r.OneEvents = one.Took[0], one.Slowest
	fmt.Printf("   one deployment among %d apps: %s\n", len(e.apps), ms(r.One))

	s0, _ = cpuSeconds(srv)
	t0, _ = cpuSeconds(rtr)
	m0 = cpuload.Read()
	wave, err := e.deployWave(ctx, e.apps, e.o.Parallel, waveTimeout)
	if err != nil {
		return r, fmt.Errorf("wave: %w", err)
	}
	r.Wave, r.WaveWall, r.Slowest, r.WaveFailed, r.WaveFailedEvents = wave.Took, wave.Wall, wave.Slowest, wave.Failed, wave.FailedEvents
	s1, _ = cpuSeconds(srv)
	t1, _ = cpuSeconds(rtr)
	r.WaveLoad = cpuload.BusyShare(m0, cpuload.Read())
	r.WaveServerCPU, r.WaveRouterCPU = (s1-s0)/r.WaveWall.Seconds(), (t1-t0)/r.WaveWall.Seconds()
	r.AfterRSS, _ = rss(srv)
	fmt.Printf("   wave of %d deployments, %d at a time: all done in %s; each: median %s, p99 %s; server %.0f %% of a core, router %.0f %%%s\n",
		len(e.apps), e.o.Parallel, ms(r.WaveWall), ms(pct(r.Wave, 50)), ms(pct(r.Wave, 99)), r.WaveServerCPU*100, r.WaveRouterCPU*100, failedNote(r.WaveFailed))
	return r, nil
}

// timeAPI times GET status of random apps and GET the apps list, one
// request at a time.
func (e *benchEnv) timeAPI(ctx context.Context, r *runResult) error {
	rng := rand.New(rand.NewPCG(1, uint64(len(r.Status))))
	for range e.o.Requests {
		a := e.apps[rng.IntN(len(e.apps))]
		t := time.Now()
		if _, err := e.api.Status(ctx, a.name, ""); err != nil {
			return fmt.Errorf("status of %s: %w", a.name, err)
		}
		r.Status = append(r.Status, time.Since(t))
	}
	for range max(e.o.Requests/10, 5) {
		t := time.Now()
		apps, err := e.api.Apps(ctx)
		if err != nil {
			return fmt.Errorf("listing apps: %w", err)
		}
		r.Apps = append(r.Apps, time.Since(t))
		if len(apps) != len(e.apps) {
			return fmt.Errorf("the apps list has %d apps, want %d", len(apps), len(e.apps))
		}
	}
	slices.Sort(r.Status)
	slices.Sort(r.Apps)
	return nil
}

// swaps is how many times the router's table is pushed again.
const swaps = 5

// timeSwaps reads the router's table through its admin socket and pushes
// the same table back: the router parses, checks and compiles it in full
// and swaps it in, as it does for every change the server pushes. Nothing
// is deployed meanwhile, so the table pushed is the one the server holds.
func (e *benchEnv) timeSwaps(ctx context.Context, r *runResult) error {
	c := routerproc.NewClient("unix:"+filepath.Join(e.data, "router", routerproc.SocketFile), "")
	defer c.CloseIdle()
	t := time.Now()
	cfg, _, err := c.Routes(ctx)
	if err != nil {
		return fmt.Errorf("reading the router's table: %w", err)
	}
	r.TableRead = time.Since(t)
	if b, err := json.Marshal(cfg); err == nil {
		r.TableBytes = len(b)
	}
	for range swaps {
		tbl := cfg
		tbl.Apps = map[string]*router.AppConfig{}
		for k, v := range cfg.Apps {
			tbl.Apps[k] = v
		}
		t := time.Now()
		if _, err := c.PutRoutes(ctx, tbl); err != nil {
			return fmt.Errorf("pushing the router's table again: %w", err)
		}
		r.Swaps = append(r.Swaps, time.Since(t))
	}
	slices.Sort(r.Swaps)
	// One app's routes alone: the router parses that app, checks the table
	// it makes with the others and compiles that app.
	name := slices.Min(slices.Collect(maps.Keys(cfg.Apps)))
	for range swaps {
		t := time.Now()
		_, err := c.PatchRoutes(ctx, router.Patch{Apps: map[string]*router.AppConfig{name: cfg.Apps[name]}})
		var ae *routerproc.APIError
		if errors.As(err, &ae) && ae.Status == http.StatusMethodNotAllowed {
			r.Patches = nil
			break // a router without PATCH /routes
		}
		if err != nil {
			return fmt.Errorf("patching app %s in the router's table: %w", name, err)
		}
		r.Patches = append(r.Patches, time.Since(t))
	}
	slices.Sort(r.Patches)
	return nil
}

// storeSize is the database with its write-ahead log.
func storeSize(db string) int64 {
	var n int64
	for _, p := range []string{db, db + "-wal"} {
		if st, err := os.Stat(p); err == nil {
			n += st.Size()
		}
	}
	return n
}

// pct is the p-th percentile of sorted durations (nearest rank; 100 is the
// largest, 0 for none).
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (p*len(sorted) + 99) / 100
	return sorted[min(max(i, 1), len(sorted))-1]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
