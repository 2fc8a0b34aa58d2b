package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"text/tabwriter"
	"time"
)

// results are every run and what the benchmark ran on; results.json holds
// them.
type results struct {
	Options  options `json:"options"`
	Machine  limits  `json:"machine"`
	IdleLoad float64 `json:"idle_load"` // the machine's busy share before anything started
	// Register is every app's first deployment, Parallel at a time: each one's
	// time, sorted, and the wall time of all.
	Register     []time.Duration `json:"register_ns"`
	RegisterWall time.Duration   `json:"register_wall_ns"`
	// RegisterSlowest is the slowest first deployment, event by event;
	// RegisterFailed says why each that did not succeed ended.
	RegisterSlowest []string          `json:"register_slowest"`
	RegisterFailed  []string          `json:"register_failed,omitempty"`
	Runs            []runResult       `json:"runs"`
	Figures         []figure          `json:"figures"`
	Took            time.Duration     `json:"took_ns"`
	Versions        map[string]string `json:"versions"`
}

// figure is one line of the report: the median over the runs of one
// run's figure, and the lowest and highest.
type figure struct {
	Name   string  `json:"name"`
	Unit   string  `json:"unit"` // "ms", "MiB", "KiB", "%" (of one core), "% of all cores", "" (a count)
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func machine() limits { return readLimits() }

// figureDefs say how each figure is read from a run.
var figureDefs = []struct {
	name, unit string
	of         func(runResult) float64
}{
	{"server memory (RSS), idle", "MiB", func(r runResult) float64 { return mibF(r.ServerRSS) }},
	{"server memory (RSS), after a wave", "MiB", func(r runResult) float64 { return mibF(r.AfterRSS) }},
	{"server CPU, idle", "%", func(r runResult) float64 { return r.ServerIdleCPU * 100 }},
	{"server CPU, during a wave", "%", func(r runResult) float64 { return r.WaveServerCPU * 100 }},
	{"router memory (RSS)", "MiB", func(r runResult) float64 { return mibF(r.RouterRSS) }},
	{"router CPU, idle (health checks)", "%", func(r runResult) float64 { return r.RouterIdleCPU * 100 }},
	{"router CPU, during a wave", "%", func(r runResult) float64 { return r.WaveRouterCPU * 100 }},
	{"instances' CPU, idle (answering checks)", "%", func(r runResult) float64 { return r.InstancesIdleCPU * 100 }},
	{"instance memory (PSS: app + its share of a shim), each", "KiB", func(r runResult) float64 {
		return float64(r.Instances.AppPSS+r.Instances.ShimPSS) / 1024 / float64(max(r.Instances.Apps, 1))
	}},
	{"threads per instance (app + its share of a shim)", "", func(r runResult) float64 {
		return float64(r.Instances.Threads) / float64(max(r.Instances.Apps, 1))
	}},
	{"shims", "", func(r runResult) float64 { return float64(r.Instances.Shims) }},
	{"store size", "MiB", func(r runResult) float64 { return mibF(r.StoreSize) }},
	{"API: an app's status, p50", "ms", func(r runResult) float64 { return msF(pct(r.Status, 50)) }},
	{"API: an app's status, p99", "ms", func(r runResult) float64 { return msF(pct(r.Status, 99)) }},
	{"API: the apps list, p50", "ms", func(r runResult) float64 { return msF(pct(r.Apps, 50)) }},
	{"API: the apps list, p99", "ms", func(r runResult) float64 { return msF(pct(r.Apps, 99)) }},
	{"router table (JSON)", "KiB", func(r runResult) float64 { return float64(r.TableBytes) / 1024 }},
	{"router table: read through the admin API", "ms", func(r runResult) float64 { return msF(r.TableRead) }},
	{"router table: swap (push, parse, check, compile, swap)", "ms", func(r runResult) float64 { return msF(pct(r.Swaps, 50)) }},
	{"router table: one app patched (PATCH /routes)", "ms", func(r runResult) float64 { return msF(pct(r.Patches, 50)) }},
	{"dashboard: apps page, every card filled", "ms", func(r runResult) float64 { return msF(r.Dashboard) }},
	{"one deployment among all the apps", "ms", func(r runResult) float64 { return msF(r.One) }},
	{"wave: every app deployed, all done", "ms", func(r runResult) float64 { return msF(r.WaveWall) }},
	{"wave: each deployment, p50", "ms", func(r runResult) float64 { return msF(pct(r.Wave, 50)) }},
	{"wave: each deployment, p99", "ms", func(r runResult) float64 { return msF(pct(r.Wave, 99)) }},
	{"wave: deployments that did not succeed", "", func(r runResult) float64 { return float64(len(r.WaveFailed)) }},
	{"machine busy during a wave", "% of all cores", func(r runResult) float64 { return r.WaveLoad * 100 }},
}

// medians computes the figures.
func (r *results) medians() {
	r.Figures = nil
	for _, d := range figureDefs {
		var v []float64
		for _, run := range r.Runs {
			v = append(v, d.of(run))
		}
		if len(v) == 0 {
			continue
		}
		s := slices.Sorted(slices.Values(v))
		r.Figures = append(r.Figures, figure{Name: d.name, Unit: d.unit, Median: median(s), Min: s[0], Max: s[len(s)-1]})
	}
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 0 {
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return sorted[n/2]
}

// print writes the figures and what to keep in mind reading them.
func (r *results) print(w io.Writer) {
	r.medians()
	o := r.Options
	fmt.Fprintf(w, "\n== %d apps × %d instances (%d instances, a shim per %s) on %d cores, waves of %d deployments at a time: median of %d runs (lowest–highest)\n",
		o.Apps, o.Instances, o.Apps*o.Instances, o.ShimPer, runtime.NumCPU(), o.Parallel, len(r.Runs))
	fmt.Fprintf(w, "registering (every app's first deployment, %d at a time): all done in %s; each deployment %s median, %s p99%s\n\n",
		o.Parallel, ms(r.RegisterWall), ms(pct(r.Register, 50)), ms(pct(r.Register, 99)), failedNote(r.RegisterFailed))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range r.Figures {
		unit := f.Unit
		if unit == "%" {
			unit = "% of a core"
		}
		fmt.Fprintf(tw, "  %s\t%s %s\t(%s–%s)\n", f.Name, num(f.Median), unit, num(f.Min), num(f.Max))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nThe dashboard was timed in %s. CPU figures are seconds of CPU per second (100 %% = one core).\n", map[bool]string{true: "headless Chromium", false: "plain HTTP (the page and its API calls, six at a time)"}[o.Browser])
	other := r.IdleLoad
	for _, run := range r.Runs {
		other = max(other, run.OtherLoad)
	}
	fmt.Fprintf(w, "Machine: %d cores, %d MiB, kernel.pid_max %d, open files %d. Other load (busy share of all cores in a quiet second before the benchmark and before each run, this benchmark's apps included): at most %.0f %%.\n",
		runtime.NumCPU(), r.Machine.MemTotal>>20, r.Machine.PidMax, r.Machine.OpenFiles, other*100)
	if other > 0.25 {
		fmt.Fprintf(w, "WARNING: the machine was busy (%.0f %%) around the runs; rerun when it is quiet.\n", other*100)
	}
	fmt.Fprintf(w, "Took %s.\n", r.Took.Round(time.Second))
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func (r *results) write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nevery run: %s\n", path)
	return nil
}

func msF(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mibF(b int64) float64 { return float64(b) / (1 << 20) }
