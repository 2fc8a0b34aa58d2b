package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// results are every run and what the benchmark ran on; results.json holds
// them.
type results struct {
	Options  options           `json:"options"`
	Runs     []runResult       `json:"runs"`
	IdleLoad float64           `json:"idle_load"`
	Versions map[string]string `json:"versions"`
	Tables   []table           `json:"tables"`
	// Kamal compares bluegreen with the kamal-proxy model.
	Kamal table `json:"kamal"`
}

// row is one platform's medians over the runs (a duration per column), or
// the ratio of docker's to process's.
type row struct {
	Name   string    `json:"name"`
	Values []float64 `json:"values"` // milliseconds, or ratios
}

// table is one health setting's rows.
type table struct {
	Health string `json:"health"`
	Rows   []row  `json:"rows"`
}

// columns name what each row holds, in order.
var columns = []string{"upload", "total", "launch", "→healthy", "launch→healthy", "direct ready", "overhead", "total − ready", "healthy→done", "retire"}

// values are one run's figures for one app, in the order of columns.
func values(d deployRun, direct directRun) []time.Duration {
	return []time.Duration{d.Upload, d.Total, d.Launch, d.ToHealthy, d.LaunchToHealthy(), direct.Ready,
		d.LaunchToHealthy() - direct.Ready, d.Total - direct.Ready, d.Finish, d.Retire}
}

// kamalColumns are the columns of the comparison with kamal-proxy's
// approach.
var kamalColumns = []string{"launch→healthy", "overhead", "total", "total − ready"}

// kamalValues are one run's figures of bluegreen (d) and of the
// kamal-proxy model (k) on one platform, against the same direct start.
func kamalValues(d deployRun, k kamalRun, direct directRun) (bg, km []time.Duration) {
	bg = []time.Duration{d.LaunchToHealthy(), d.LaunchToHealthy() - direct.Ready, d.Total, d.Total - direct.Ready}
	km = []time.Duration{k.LaunchToHealthy(), k.LaunchToHealthy() - direct.Ready, k.Total(), k.Total() - direct.Ready}
	return bg, km
}

// targetOverhead is the most a deployment may add to the app's own
// readiness with default settings.
const targetOverhead = 200 * time.Millisecond

// referenceHealth is the health setting compared with kamal-proxy and
// held to the target: the defaults when they were measured.
func (r *results) referenceHealth() string {
	if slices.Contains(r.Options.Health, "default") {
		return "default"
	}
	return r.Options.Health[0]
}

// kamalTable compares bluegreen (with the reference health setting) and
// the kamal-proxy model on each platform: medians over the runs, and the
// ratio of bluegreen's to the model's.
func (r *results) kamalTable() table {
	h := r.referenceHealth()
	t := table{Health: h}
	for _, p := range r.Options.Platforms {
		bgCols, kmCols := make([][]float64, len(kamalColumns)), make([][]float64, len(kamalColumns))
		for _, run := range r.Runs {
			d, ok := run.Deploys[p+"-"+h]
			k, kok := run.Kamal[p]
			if !ok || !kok {
				continue
			}
			bg, km := kamalValues(d, k, run.Direct[p+"-"+h])
			for i := range kamalColumns {
				bgCols[i] = append(bgCols[i], float64(bg[i])/float64(time.Millisecond))
				kmCols[i] = append(kmCols[i], float64(km[i])/float64(time.Millisecond))
			}
		}
		bg, km, ratio := make([]float64, len(kamalColumns)), make([]float64, len(kamalColumns)), make([]float64, len(kamalColumns))
		for i := range kamalColumns {
			bg[i], km[i] = median(bgCols[i]), median(kmCols[i])
			ratio[i] = bg[i] / km[i]
		}
		t.Rows = append(t.Rows, row{Name: p + ": bluegreen", Values: bg}, row{Name: p + ": kamal-proxy model", Values: km},
			row{Name: p + ": bluegreen / kamal-proxy", Values: ratio})
	}
	return t
}

// verdicts say, per platform, whether the deployment stayed within
// targetOverhead of the app's readiness with the reference health
// setting, in both launch→healthy and the whole deployment.
func (r *results) verdicts() []string {
	h := r.referenceHealth()
	var out []string
	for _, t := range r.Tables {
		if t.Health != h {
			continue
		}
		for _, row := range t.Rows {
			if row.Name != platformProcess && row.Name != platformDocker {
				continue
			}
			over, total := row.Values[slices.Index(columns, "overhead")], row.Values[slices.Index(columns, "total − ready")]
			verdict := "met"
			if max(over, total) >= float64(targetOverhead)/float64(time.Millisecond) {
				verdict = "MISSED"
			}
			out = append(out, fmt.Sprintf("%s: launch→healthy − ready %.1f ms, whole deployment − ready %.1f ms: %s", row.Name, over, total, verdict))
		}
	}
	return out
}

// medians computes the table of each health setting.
func (r *results) medians() {
	r.Tables = nil
	for _, h := range r.Options.Health {
		t := table{Health: h}
		byPlat := map[string][]float64{}
		for _, p := range r.Options.Platforms {
			cols := make([][]float64, len(columns))
			for _, run := range r.Runs {
				d, ok := run.Deploys[p+"-"+h]
				if !ok {
					continue
				}
				for i, v := range values(d, run.Direct[p+"-"+h]) {
					cols[i] = append(cols[i], float64(v)/float64(time.Millisecond))
				}
			}
			med := make([]float64, len(columns))
			for i, c := range cols {
				med[i] = median(c)
			}
			byPlat[p] = med
			t.Rows = append(t.Rows, row{Name: p, Values: med})
		}
		for _, other := range []string{platformDocker, platformKubernetes} {
			proc, o := byPlat[platformProcess], byPlat[other]
			if proc == nil || o == nil {
				continue
			}
			diff, ratio := make([]float64, len(columns)), make([]float64, len(columns))
			for i := range columns {
				diff[i] = o[i] - proc[i]
				ratio[i] = o[i] / proc[i]
			}
			t.Rows = append(t.Rows, row{Name: other + " − process", Values: diff}, row{Name: other + " / process", Values: ratio})
		}
		r.Tables = append(r.Tables, t)
	}
	r.Kamal = r.kamalTable()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	} else {
		return s[n/2]
	}
}

var healthTitles = map[string]string{
	"default": "health defaults (interval 2s, timeout 1s, healthy_threshold 2)",
	"fast":    "health interval 50ms (timeout 50ms, healthy_threshold 2)",
}

// printTable writes one table: milliseconds, or ratios in the rows whose
// name has a "/".
func printTable(w io.Writer, cols []string, t table) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\t%s\t\n", strings.Join(cols, "\t"))
	for _, row := range t.Rows {
		cells := make([]string, len(row.Values))
		for i, v := range row.Values {
			if strings.Contains(row.Name, "/") {
				cells[i] = fmt.Sprintf("%.2f×", v)
			} else {
				cells[i] = fmt.Sprintf("%.1f", v)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t\n", row.Name, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

// print writes the tables and what to keep in mind reading them.
func (r *results) print(w io.Writer) {
	r.medians()
	for _, t := range r.Tables {
		fmt.Fprintf(w, "\n== AllAtOnce deployment of %d instances, %s: median of %d runs, milliseconds\n",
			r.Options.Instances, healthTitles[t.Health], len(r.Runs))
		printTable(w, columns, t)
	}
	fmt.Fprintln(w, `
upload          the API call creating the revision (bundle sent, checked, stored, unpacked), before the deployment
total           the API call starting the deployment to its success
launch          entering Provisioning to the last instance started (instances launched at once)
→healthy        the last instance started to every green instance passing the router's health check
direct ready    the same binary started directly (exec, or container create+start), first start to every /healthz 200
overhead        launch→healthy − direct ready: what the deployment adds to the app's own start on that platform
total − ready   total − direct ready: what the whole deployment adds to it
healthy→done    green healthy to success: test route, switch, blue fenced, drained and stopped
retire          the Retiring phase: blue fenced, drained and its instances stopped`)
	fmt.Fprintf(w, "\n== Against kamal-proxy's approach (a check when the target is added, then every %s, healthy on the first 2xx; old instances stopped after the switch), bluegreen with %s: median of %d runs, milliseconds\n",
		kamalInterval, healthTitles[r.Kamal.Health], len(r.Runs))
	printTable(w, kamalColumns, r.Kamal)
	fmt.Fprintf(w, "\nDeploy overhead with %s (target: below %s beyond the app's readiness):\n", healthTitles[r.referenceHealth()], targetOverhead)
	for _, v := range r.verdicts() {
		fmt.Fprintf(w, "  %s\n", v)
	}
	other, during := r.IdleLoad, 0.0
	for _, run := range r.Runs {
		other, during = max(other, run.OtherLoad), max(during, run.Load)
	}
	fmt.Fprintf(w, "\nOn %d cores, other load (the machine's busy share in a quiet second before the benchmark and before each run): at most %.0f %%; during the runs, this benchmark's own work included: at most %.0f %%.\n",
		runtime.NumCPU(), other*100, during*100)
	fmt.Fprintln(w, "Every figure shares the machine with whatever else runs on it: compare the two platforms within one run (the differences and ratios), not absolute figures across runs or machines.")
	if other > 0.10 {
		fmt.Fprintf(w, "WARNING: other work used up to %.0f %% of the machine around the runs; rerun when it is quiet.\n", other*100)
	}
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
