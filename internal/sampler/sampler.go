// Package sampler keeps a short history of every app's traffic per fleet:
// request rate, error rate and p99 latency, read from the router every few
// seconds and kept in memory for a quarter of an hour. The router's own
// windows reach back 5 minutes only; the dashboard's charts show 15.
package sampler

import (
	"context"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"bluegreen/internal/engine"
)

// Defaults of Options.
const (
	DefaultEvery = 2 * time.Second
	DefaultKeep  = 15 * time.Minute
)

// FleetPoint is one fleet's traffic over one sampling interval.
type FleetPoint struct {
	Revision    string  `json:"revision,omitempty"`
	Weight      int     `json:"weight"`
	Requests    uint64  `json:"requests"`
	RequestRate float64 `json:"request_rate"` // per second
	ErrorRate   float64 `json:"error_rate"`   // share of 5xx
	P99Seconds  float64 `json:"p99_seconds"`
}

// Point is an app's fleets at one time, by slot name (blue, green).
type Point struct {
	Time   time.Time             `json:"time"`
	Fleets map[string]FleetPoint `json:"fleets"`
}

// Options configure a Sampler.
type Options struct {
	// Apps lists the apps to sample.
	Apps func(ctx context.Context) ([]string, error)
	// Fleets reads an app's fleets over a window (engine.Engine.Fleets).
	Fleets func(ctx context.Context, app string, window time.Duration) (map[string]engine.FleetMetrics, error)
	// AllFleets, when set, reads every app's fleets at once
	// (engine.Engine.AllFleets), in place of Fleets: a sample of a thousand
	// apps is then one read of the router, not a thousand.
	AllFleets func(ctx context.Context, apps []string, window time.Duration) (map[string]map[string]engine.FleetMetrics, error)
	// Every is the sampling interval, also the window each sample covers
	// (DefaultEvery when zero). Keep is how long samples are kept
	// (DefaultKeep when zero).
	Every, Keep time.Duration
	Logger      *slog.Logger
	Now         func() time.Time // time.Now when nil
}

// Sampler samples the apps' fleets. Run drives it; Since reads it.
type Sampler struct {
	o      Options
	mu     sync.Mutex
	points map[string][]sample // by app, oldest first
}

// sample is a Point as it is kept: a quarter of an hour of a thousand apps
// is 450,000 of them, and a Point with a map of its fleets takes about
// 700 bytes; a sample, with its first fleet inline and its strings
// shared with the sample before, takes a sixth of that.
type sample struct {
	at    int64 // Unix nanoseconds
	first fleetSample
	more  []fleetSample // the fleets after the first, while an app has two
}

type fleetSample struct {
	name, revision        string // "" name: no fleet
	requests              uint64
	rate, errorRate, p99s float64
	weight                int16
}

func (f fleetSample) point() FleetPoint {
	return FleetPoint{Revision: f.revision, Weight: int(f.weight), Requests: f.requests,
		RequestRate: f.rate, ErrorRate: f.errorRate, P99Seconds: f.p99s}
}

// fleets are the sample's fleets.
func (s *sample) fleets() []fleetSample {
	if s.first.name == "" {
		return nil
	}
	return append([]fleetSample{s.first}, s.more...)
}

// point is s as the API shows it.
func (s *sample) point() Point {
	p := Point{Time: time.Unix(0, s.at).UTC(), Fleets: map[string]FleetPoint{}}
	for _, f := range s.fleets() {
		p.Fleets[f.name] = f.point()
	}
	return p
}

// add puts one fleet in s, sharing its strings with prev's when equal.
func (s *sample) add(prev *sample, name string, fp FleetPoint) {
	f := fleetSample{name: name, revision: fp.Revision, requests: fp.Requests, rate: fp.RequestRate,
		errorRate: fp.ErrorRate, p99s: fp.P99Seconds, weight: int16(fp.Weight)}
	if prev != nil {
		for _, pf := range prev.fleets() {
			if pf.name == name {
				f.name = pf.name
				if pf.revision == f.revision {
					f.revision = pf.revision
				}
			}
		}
	}
	if s.first.name == "" {
		s.first = f
		return
	}
	s.more = append(s.more, f)
}

// New returns a sampler; nothing is sampled until Run.
func New(o Options) *Sampler {
	if o.Every <= 0 {
		o.Every = DefaultEvery
	}
	if o.Keep <= 0 {
		o.Keep = DefaultKeep
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Sampler{o: o, points: map[string][]sample{}}
}

// Every is the sampling interval.
func (s *Sampler) Every() time.Duration { return s.o.Every }

// Keep is how far back samples reach.
func (s *Sampler) Keep() time.Duration { return s.o.Keep }

// Run samples every interval until ctx ends.
func (s *Sampler) Run(ctx context.Context) {
	t := time.NewTicker(s.o.Every)
	defer t.Stop()
	for {
		if err := s.SampleOnce(ctx); err != nil && ctx.Err() == nil {
			s.o.Logger.Warn("sampling traffic for the dashboard", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SampleOnce takes one sample of every app and forgets what is older than
// Keep, and the apps that are gone. An app whose fleets cannot be read is
// skipped this time; the first such error is returned.
func (s *Sampler) SampleOnce(ctx context.Context) error {
	apps, err := s.o.Apps(ctx)
	if err != nil {
		return err
	}
	var firstErr error
	var all map[string]map[string]engine.FleetMetrics
	if s.o.AllFleets != nil {
		if all, err = s.o.AllFleets(ctx, apps, s.o.Every); err != nil {
			return err
		}
	}
	got := map[string]map[string]engine.FleetMetrics{}
	for _, app := range apps {
		var m map[string]engine.FleetMetrics
		if all != nil {
			m = all[app]
		} else if m, err = s.o.Fleets(ctx, app, s.o.Every); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		got[app] = m
	}
	now := s.o.Now()
	cutoff := now.Add(-s.o.Keep).UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	known := make(map[string]bool, len(apps))
	for _, app := range apps {
		known[app] = true
	}
	for app := range s.points {
		if !known[app] {
			delete(s.points, app)
		}
	}
	for app, m := range got {
		pts := s.points[app]
		var prev *sample
		if len(pts) > 0 {
			prev = &pts[len(pts)-1]
		}
		p := sample{at: now.UnixNano()}
		for _, name := range slices.Sorted(maps.Keys(m)) {
			f := m[name]
			p.add(prev, name, FleetPoint{
				Revision: f.Revision, Weight: f.Weight, Requests: f.Requests,
				RequestRate: float64(f.Requests) / s.o.Every.Seconds(),
				ErrorRate:   f.ErrorRate(), P99Seconds: f.P99.Seconds(),
			})
		}
		// Oldest first: drop what is past Keep, moving the rest down in
		// place rather than growing a new slice every time.
		i := sort.Search(len(pts), func(i int) bool { return pts[i].at > cutoff })
		pts = append(pts[:copy(pts, pts[i:])], p)
		s.points[app] = pts
	}
	return firstErr
}

// Since returns the app's samples taken after t, oldest first (all of
// them for the zero time).
func (s *Sampler) Since(app string, t time.Time) []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	pts := s.points[app]
	after := t.UnixNano()
	if t.IsZero() {
		after = math.MinInt64
	}
	i := sort.Search(len(pts), func(i int) bool { return pts[i].at > after })
	out := make([]Point, 0, len(pts)-i)
	for j := i; j < len(pts); j++ {
		out = append(out, pts[j].point())
	}
	return out
}
