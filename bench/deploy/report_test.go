package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"bluegreen/internal/api"
)

func TestTimingsFromEvents(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	phase := func(ms int, p string) api.Event {
		return api.Event{Time: at(ms), Kind: "phase", Fields: map[string]any{"phase": p}}
	}
	evs := []api.Event{
		{Time: at(2), Kind: "deployment.created"},
		phase(3, "Provisioning"),
		{Time: at(80), Kind: "instance.launched"},
		{Time: at(81), Kind: "instance.launched"},
		phase(82, "Validating"),
		{Time: at(140), Kind: "health.passed"},
		phase(150, "Retiring"),
		phase(190, "Succeeded"),
	}
	got, err := timings(t0, evs)
	if err != nil {
		t.Fatal(err)
	}
	want := deployRun{Total: 190 * time.Millisecond, Launch: 78 * time.Millisecond, ToHealthy: 59 * time.Millisecond,
		Finish: 50 * time.Millisecond, Retire: 40 * time.Millisecond}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("timings = %+v, want %+v", got, want)
	}
	if got.LaunchToHealthy() != 137*time.Millisecond {
		t.Fatalf("launch to healthy = %v, want 137ms", got.LaunchToHealthy())
	}

	// A first deployment has no Retiring: it cannot be measured.
	_, err = timings(t0, append(evs[:6:6], phase(190, "Succeeded")))
	if err == nil || !strings.Contains(err.Error(), "entering Retiring") {
		t.Fatalf("without Retiring: err = %v, want one naming it", err)
	}
}

func TestMedianAndRotate(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	s := []string{"process", "docker"}
	if got := strings.Join(rotate(s, 1), ","); got != "docker,process" {
		t.Errorf("rotate by 1 = %s", got)
	}
	if got := strings.Join(rotate(s, 2), ","); got != "process,docker" {
		t.Errorf("rotate by 2 = %s", got)
	}
}

func TestKamalTableAndVerdicts(t *testing.T) {
	msd := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	r := &results{Options: options{Runs: 1, Instances: 2, Platforms: []string{platformProcess}, Health: []string{"fast", "default"}}}
	r.Runs = []runResult{{
		Direct:  map[string]directRun{"process-default": {Ready: msd(10)}, "process-fast": {Ready: msd(10)}},
		Deploys: map[string]deployRun{"process-default": {Total: msd(250), Launch: msd(40), ToHealthy: msd(30)}, "process-fast": {Total: msd(150), Launch: msd(40), ToHealthy: msd(30)}},
		Kamal:   map[string]kamalRun{platformProcess: {Launch: msd(10), ToHealthy: msd(1000), Stop: msd(20)}},
	}}
	r.medians()
	// The defaults are the reference even when listed second.
	if r.Kamal.Health != "default" || len(r.Kamal.Rows) != 3 {
		t.Fatalf("kamal table = %+v", r.Kamal)
	}
	bg, km, ratio := r.Kamal.Rows[0].Values, r.Kamal.Rows[1].Values, r.Kamal.Rows[2].Values
	// launch→healthy, overhead, total, total − ready
	if !reflect.DeepEqual(bg, []float64{70, 60, 250, 240}) || !reflect.DeepEqual(km, []float64{1010, 1000, 1030, 1020}) {
		t.Fatalf("bluegreen %v, kamal model %v", bg, km)
	}
	if ratio[0] != 70.0/1010 {
		t.Fatalf("ratio = %v", ratio)
	}
	v := r.verdicts()
	if len(v) != 1 || !strings.Contains(v[0], "whole deployment − ready 240.0 ms: MISSED") {
		t.Fatalf("verdicts = %q", v)
	}
	r.Runs[0].Deploys["process-default"] = deployRun{Total: msd(209), Launch: msd(40), ToHealthy: msd(30)}
	r.medians()
	if v := r.verdicts(); !strings.HasSuffix(v[0], ": met") {
		t.Fatalf("verdicts = %q", v)
	}
}
