package main

import (
	"strings"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 200; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    int
		want time.Duration
	}{{50, 100 * time.Millisecond}, {99, 198 * time.Millisecond}, {100, 200 * time.Millisecond}, {0, time.Millisecond}} {
		if got := pct(d, c.p); got != c.want {
			t.Errorf("pct(1..200 ms, %d) = %v, want %v", c.p, got, c.want)
		}
	}
	if pct(nil, 50) != 0 {
		t.Error("pct of nothing is not 0")
	}
	if got := median([]float64{1, 2, 3, 4}); got != 2.5 {
		t.Errorf("median = %v", got)
	}
}

func TestOptionsNameWhatIsWrong(t *testing.T) {
	ok := options{Apps: 100, Instances: 10, Runs: 3, Requests: 200, Parallel: 25, ShimPer: "fleet"}
	if err := ok.check(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		edit func(*options)
		want string
	}{
		{func(o *options) { o.Apps = 0 }, "-apps"},
		{func(o *options) { o.Apps, o.Instances = 2000, 10 }, "-apps × -instances"},
		{func(o *options) { o.Apps, o.Instances = 700, 1 }, "-run-as USER"},
		{func(o *options) { o.Parallel = 0 }, "-parallel"},
		{func(o *options) { o.ShimPer = "app" }, "-shim-per"},
	} {
		o := ok
		c.edit(&o)
		if err := o.check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want one naming %s", o, err, c.want)
		}
	}
	o := ok
	o.Apps, o.Instances, o.RunAs = 700, 1, "nobody"
	if err := o.check(); err != nil {
		t.Errorf("700 apps as nobody: %v", err)
	}
}
