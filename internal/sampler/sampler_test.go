package sampler

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"
	"unsafe"

	"bluegreen/internal/engine"
)

// The fleets here come from a function standing in for the router, which
// the end-to-end tests exercise for real; this test is about the history.
func TestSamplesAreKeptForTheSpanAndPerApp(t *testing.T) {
	now := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	apps := []string{"shop", "blog"}
	s := New(Options{
		Apps: func(context.Context) ([]string, error) { return apps, nil },
		Fleets: func(_ context.Context, app string, window time.Duration) (map[string]engine.FleetMetrics, error) {
			if window != 2*time.Second {
				t.Errorf("window %s, want the sampling interval", window)
			}
			return map[string]engine.FleetMetrics{"blue": {Revision: "1", Weight: 100, Requests: 20, Errors: 1, P99: 30 * time.Millisecond}}, nil
		},
		Every: 2 * time.Second, Keep: time.Minute,
		Now: func() time.Time { return now },
	})
	for range 40 { // 80 s of samples
		if err := s.SampleOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		now = now.Add(2 * time.Second)
	}
	pts := s.Since("shop", time.Time{})
	if len(pts) != 30 {
		t.Fatalf("%d samples kept, want a minute's worth (30)", len(pts))
	}
	b := pts[0].Fleets["blue"]
	if b.RequestRate != 10 || b.ErrorRate != 0.05 || b.P99Seconds != 0.03 || b.Weight != 100 {
		t.Errorf("sample %+v", b)
	}
	if got := s.Since("shop", pts[27].Time); len(got) != 2 {
		t.Errorf("since the 28th sample: %d, want 2", len(got))
	}
	apps = []string{"shop"}
	if err := s.SampleOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(s.Since("blog", time.Time{})) != 0 {
		t.Error("a removed app's samples are kept")
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop with its context")
	}
}

// With AllFleets a sample of every app is one read, whatever the number of
// apps; an app the snapshot lacks gets a point without fleets.
func TestOneReadSamplesEveryApp(t *testing.T) {
	apps := []string{"a", "b", "c"}
	reads := 0
	s := New(Options{
		Apps: func(context.Context) ([]string, error) { return apps, nil },
		Fleets: func(context.Context, string, time.Duration) (map[string]engine.FleetMetrics, error) {
			t.Error("Fleets asked one app at a time")
			return nil, nil
		},
		AllFleets: func(_ context.Context, names []string, _ time.Duration) (map[string]map[string]engine.FleetMetrics, error) {
			reads++
			return map[string]map[string]engine.FleetMetrics{
				"a": {"blue": {Revision: "1", Weight: 100, Requests: 4}},
				"b": {"green": {Revision: "2", Weight: 100}},
			}, nil
		},
		Every: time.Second,
	})
	if err := s.SampleOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if reads != 1 {
		t.Fatalf("%d reads for %d apps, want 1", reads, len(apps))
	}
	if p := s.Since("a", time.Time{}); len(p) != 1 || p[0].Fleets["blue"].RequestRate != 4 {
		t.Errorf("a: %+v", p)
	}
	if p := s.Since("c", time.Time{}); len(p) != 1 || len(p[0].Fleets) != 0 {
		t.Errorf("c: %+v", p)
	}
}

// A sample keeps an app's fleets as they were read, two at a time during
// a deployment, and shares its strings with the sample before: a quarter
// of an hour of a thousand apps is kept in memory.
func TestSamplesKeepBothFleetsAndShareStrings(t *testing.T) {
	now := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	s := New(Options{
		Apps: func(context.Context) ([]string, error) { return []string{"shop"}, nil },
		AllFleets: func(context.Context, []string, time.Duration) (map[string]map[string]engine.FleetMetrics, error) {
			// Fresh strings every time, as decoded from the router.
			return map[string]map[string]engine.FleetMetrics{"shop": {
				"blue":  {Revision: fmt.Sprint(3), Weight: 90, Requests: 18},
				"green": {Revision: fmt.Sprint(4), Weight: 10, Requests: 2, Errors: 1},
			}}, nil
		},
		Every: time.Second, Now: func() time.Time { return now },
	})
	for range 2 {
		if err := s.SampleOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Second)
	}
	pts := s.Since("shop", time.Time{})
	if len(pts) != 2 || !pts[0].Time.Equal(now.Add(-2*time.Second)) {
		t.Fatalf("samples %+v", pts)
	}
	want := map[string]FleetPoint{
		"blue":  {Revision: "3", Weight: 90, Requests: 18, RequestRate: 18},
		"green": {Revision: "4", Weight: 10, Requests: 2, RequestRate: 2, ErrorRate: 0.5},
	}
	if !reflect.DeepEqual(pts[1].Fleets, want) {
		t.Errorf("fleets %+v, want %+v", pts[1].Fleets, want)
	}
	kept := s.points["shop"]
	for i := range 2 {
		a, b := kept[0].fleets()[i], kept[1].fleets()[i]
		if unsafe.StringData(a.revision) != unsafe.StringData(b.revision) || unsafe.StringData(a.name) != unsafe.StringData(b.name) {
			t.Errorf("fleet %s: the second sample keeps strings of its own", a.name)
		}
	}
	if got := s.Since("shop", pts[0].Time); len(got) != 1 || !got[0].Time.Equal(pts[1].Time) {
		t.Errorf("since the first: %+v", got)
	}
}
