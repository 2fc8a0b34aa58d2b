package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"
)

// report is what the run prints and writes to results.json.
type report struct {
	Finished    string            `json:"finished"`
	Interrupted bool              `json:"interrupted,omitempty"`
	Settings    settings          `json:"settings"`
	Environment map[string]string `json:"environment"`
	Tables      []table           `json:"tables"`
	Target      target            `json:"target"`
	Ratio       ratioTarget       `json:"ratio_target"`
	Failures    map[string]string `json:"failures,omitempty"`
	Runs        []runResult       `json:"runs"`
	// HTTPS are the runs of the HTTPS part, every round.
	HTTPS []tlsRun `json:"https,omitempty"`
}

type settings struct {
	Rounds      int      `json:"rounds"`
	Seconds     int      `json:"seconds_per_run"`
	Warmup      int      `json:"warmup_seconds"`
	Threads     int      `json:"wrk_threads"`
	Connections []int    `json:"connections"`
	Workloads   []string `json:"workloads"`
	PostBytes   int      `json:"post_bytes"`
	Proxies     []string `json:"proxies"`
}

// table holds, for one workload and connection count, the median over rounds
// per contender.
type table struct {
	Workload    string `json:"workload"`
	Connections int    `json:"connections"`
	Rows        []row  `json:"rows"`
}

type row struct {
	Proxy      string   `json:"proxy"`
	Rounds     int      `json:"rounds"`
	ReqPerSec  float64  `json:"req_per_s"`
	P50Ms      float64  `json:"p50_ms"`
	P99Ms      float64  `json:"p99_ms"`
	Errors     int64    `json:"errors"` // summed over rounds
	ProxyCPU   *float64 `json:"proxy_cpu_us_per_req,omitempty"`
	BackendCPU float64  `json:"backend_cpu_us_per_req"`
	// OtherCPUMax is the highest share of the machine other processes used
	// during any of the rounds, in percent.
	OtherCPUMax float64  `json:"other_cpu_max_pct"`
	RPSRatio    *float64 `json:"req_per_s_vs_haproxy,omitempty"`
	CPURatio    *float64 `json:"cpu_per_req_vs_haproxy,omitempty"`
	P99Ratio    *float64 `json:"p99_vs_haproxy,omitempty"`
}

type target struct {
	MaxCPU   float64 `json:"max_proxy_cpu_us_per_req"`
	Measured bool    `json:"measured"`
	Met      bool    `json:"met"`
	Summary  string  `json:"summary"`
}

// ratioTarget is the router against HAProxy in the same run: in every table,
// CPU per request at most MaxRatio times HAProxy's and p99 at most HAProxy's.
type ratioTarget struct {
	MaxRatio float64 `json:"max_cpu_per_req_vs_haproxy"`
	Measured bool    `json:"measured"`
	Met      bool    `json:"met"`
	Summary  string  `json:"summary"`
}

func (b *bench) report(interrupted bool) report {
	o := b.opts
	rep := report{
		Finished:    time.Now().UTC().Format(time.RFC3339),
		Interrupted: interrupted,
		Settings:    settings{o.rounds, o.seconds, o.warmup, o.threads, o.conns, o.workloads, o.postBytes, o.proxies},
		Environment: environment(),
		Failures:    b.failures,
		Runs:        b.runs,
	}
	for _, w := range o.workloads {
		for _, conns := range o.conns {
			t := table{Workload: w, Connections: conns}
			for _, name := range o.proxies {
				if r, ok := summarize(b.runs, w, name, conns); ok {
					t.Rows = append(t.Rows, r)
				}
			}
			addRatios(t.Rows)
			rep.Tables = append(rep.Tables, t)
		}
	}
	rep.Target = b.judge(rep.Tables)
	rep.Ratio = b.judgeRatio(rep.Tables)
	return rep
}

func summarize(runs []runResult, workload, name string, conns int) (row, bool) {
	var rps, p50, p99, cpu, back []float64
	r := row{Proxy: name}
	for _, run := range runs {
		if run.Workload != workload || run.Proxy != name || run.Connections != conns {
			continue
		}
		r.Rounds++
		r.Errors += run.ErrorsTotal
		rps = append(rps, run.ReqPerSec)
		p50 = append(p50, run.P50Ms)
		p99 = append(p99, run.P99Ms)
		back = append(back, run.BackendCPU)
		r.OtherCPUMax = max(r.OtherCPUMax, run.OtherCPUPct)
		if run.ProxyCPU != nil {
			cpu = append(cpu, *run.ProxyCPU)
		}
	}
	if r.Rounds == 0 {
		return r, false
	}
	r.ReqPerSec, r.P50Ms, r.P99Ms, r.BackendCPU = median(rps), median(p50), median(p99), median(back)
	if len(cpu) > 0 {
		v := median(cpu)
		r.ProxyCPU = &v
	}
	return r, true
}

func addRatios(rows []row) {
	var ha *row
	for i := range rows {
		if rows[i].Proxy == "haproxy" {
			ha = &rows[i]
		}
	}
	if ha == nil {
		return
	}
	for i := range rows {
		r := &rows[i]
		if ha.ReqPerSec > 0 {
			v := r.ReqPerSec / ha.ReqPerSec
			r.RPSRatio = &v
		}
		if r.ProxyCPU != nil && ha.ProxyCPU != nil && *ha.ProxyCPU > 0 {
			v := *r.ProxyCPU / *ha.ProxyCPU
			r.CPURatio = &v
		}
		if ha.P99Ms > 0 {
			v := r.P99Ms / ha.P99Ms
			r.P99Ratio = &v
		}
	}
}

// judge checks the router's target: at every connection count, a median proxy
// CPU per plain (GET) request at or below the limit, and no error in any round
// of any workload.
func (b *bench) judge(tables []table) target {
	t := target{MaxCPU: b.opts.maxCPU}
	head := fmt.Sprintf("bluegreen router target (≤ %.0f µs proxy CPU per GET, zero errors):", t.MaxCPU)
	if !contains(b.opts.workloads, workloadGet) {
		t.Summary = head + " not measured (get not in -workloads)"
		return t
	}
	if !contains(b.opts.proxies, "bluegreen") {
		t.Summary = head + " not measured (bluegreen not in -proxies)"
		return t
	}
	var parts []string
	met, seen, gets := true, 0, 0
	var errs int64
	for _, tb := range tables {
		if tb.Workload == workloadGet {
			gets++
		}
		for _, r := range tb.Rows {
			if r.Proxy != "bluegreen" || r.ProxyCPU == nil {
				continue
			}
			errs += r.Errors
			if tb.Workload != workloadGet {
				continue
			}
			seen++
			part := fmt.Sprintf("%.1f µs at %d connections", *r.ProxyCPU, tb.Connections)
			if r.CPURatio != nil {
				part += fmt.Sprintf(" = %.2fx HAProxy", *r.CPURatio)
			}
			parts = append(parts, part)
			if *r.ProxyCPU > t.MaxCPU {
				met = false
			}
		}
	}
	why, failed := b.failures["bluegreen"]
	t.Measured = seen > 0
	t.Met = t.Measured && !failed && seen == gets && met && errs == 0
	verdict := "NOT MET"
	if t.Met {
		verdict = "MET"
	}
	if !t.Measured {
		t.Summary = fmt.Sprintf("%s NOT MET (not measured: %s)", head, why)
		return t
	}
	t.Summary = fmt.Sprintf("%s %s (%s; %d errors)", head, verdict, strings.Join(parts, ", "), errs)
	if failed {
		t.Summary += "; failed: " + why
	}
	return t
}

// judgeRatio checks the router against HAProxy in every table: CPU per request
// at most the target ratio, and p99 no worse than HAProxy's.
func (b *bench) judgeRatio(tables []table) ratioTarget {
	t := ratioTarget{MaxRatio: b.opts.maxRatio}
	head := fmt.Sprintf("bluegreen against HAProxy (≤ %.2fx CPU per request, p99 ≤ HAProxy's, every table):", t.MaxRatio)
	var parts []string
	met, seen := true, 0
	for _, tb := range tables {
		for _, r := range tb.Rows {
			if r.Proxy != "bluegreen" || r.CPURatio == nil || r.P99Ratio == nil {
				continue
			}
			seen++
			parts = append(parts, fmt.Sprintf("%s %d: %.2fx CPU, p99 %.2f ms = %.2fx", tb.Workload, tb.Connections, *r.CPURatio, r.P99Ms, *r.P99Ratio))
			if *r.CPURatio > t.MaxRatio || *r.P99Ratio > 1 {
				met = false
			}
		}
	}
	_, failed := b.failures["bluegreen"]
	t.Measured = seen > 0
	t.Met = t.Measured && !failed && seen == len(tables) && met
	if !t.Measured {
		t.Summary = head + " NOT MET (not measured: bluegreen and haproxy must both be in -proxies)"
		return t
	}
	verdict := "NOT MET"
	if t.Met {
		verdict = "MET"
	}
	t.Summary = fmt.Sprintf("%s %s (%s)", head, verdict, strings.Join(parts, "; "))
	return t
}

// workloadTitle names a workload in the tables' headings.
func workloadTitle(w string, postBytes int) string {
	if w == workloadPost {
		return fmt.Sprintf("POST with a %d-byte body", postBytes)
	}
	return "GET"
}

func (r report) print(w io.Writer) {
	s := r.Settings
	var noisiest float64
	for _, t := range r.Tables {
		if len(t.Rows) == 0 {
			continue
		}
		script := ""
		if t.Workload == workloadPost {
			script = " -s post.lua"
		}
		fmt.Fprintf(w, "\n== %s, %d connections: wrk -t%d -c%d -d%ds --latency%s, median of %d rounds (errors summed)\n",
			workloadTitle(t.Workload, s.PostBytes), t.Connections, s.Threads, t.Connections, s.Seconds, script, s.Rounds)
		fmt.Fprintf(w, "%-10s %9s %8s %8s %7s %13s %15s  %16s  %17s  %14s  %11s\n",
			"proxy", "req/s", "p50 ms", "p99 ms", "errors", "proxy µs/req", "backend µs/req", "req/s vs HAProxy", "µs/req vs HAProxy", "p99 vs HAProxy", "other load")
		for _, row := range t.Rows {
			fmt.Fprintf(w, "%-10s %9.0f %8.2f %8.2f %7d %13s %15.1f  %16s  %17s  %14s  %10.0f%%\n",
				row.Proxy, row.ReqPerSec, row.P50Ms, row.P99Ms, row.Errors,
				optional(row.ProxyCPU, "%.1f"), row.BackendCPU, optional(row.RPSRatio, "%.2fx"), optional(row.CPURatio, "%.2fx"),
				optional(row.P99Ratio, "%.2fx"), row.OtherCPUMax)
			noisiest = max(noisiest, row.OtherCPUMax)
		}
	}
	if len(r.Failures) > 0 {
		fmt.Fprintln(w, "\nnot (fully) measured:")
		names := make([]string, 0, len(r.Failures))
		for n := range r.Failures {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(w, "  %s: %s\n", n, r.Failures[n])
		}
	}
	if noisiest > 10 {
		fmt.Fprintf(w, "\nwarning: other processes used up to %.0f%% of the machine during some runs; these numbers are noisy\n", noisiest)
	}
	if r.Interrupted {
		fmt.Fprintln(w, "\ninterrupted: the tables cover the runs completed so far")
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, r.Target.Summary)
	fmt.Fprintln(w, r.Ratio.Summary)
}

func (r report) write(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

func optional(v *float64, format string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(format, *v)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// environment records what produced the numbers, for comparing runs later.
func environment() map[string]string {
	env := map[string]string{
		"go":   runtime.Version(),
		"cpus": fmt.Sprint(runtime.NumCPU()),
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		env["kernel"] = strings.TrimSpace(string(data))
	}
	firstLine := func(key string, argv ...string) {
		out, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n"); line != "" {
			env[key] = line
		}
	}
	if p, err := systemBinary("haproxy"); err == nil {
		firstLine("haproxy", p, "-v")
	}
	if p, err := systemBinary("nginx"); err == nil {
		firstLine("nginx", p, "-v")
	}
	firstLine("wrk", "wrk", "-v")
	firstLine("commit", "git", "describe", "--always", "--dirty")
	return env
}
