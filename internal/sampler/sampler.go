// Package sampler keeps a short history of every app's traffic per fleet:
// request rate, error rate and p99 latency, read from the router every few
// seconds and kept in memory for a quarter of an hour. The router's own
// windows reach back 5 minutes only; the dashboard's charts show 15.
package sampler

import (
	"context"
	"log/slog"
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
	points map[string][]Point // by app, oldest first
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
	return &Sampler{o: o, points: map[string][]Point{}}
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
	got := map[string]Point{}
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
		p := Point{Time: s.o.Now().UTC(), Fleets: map[string]FleetPoint{}}
		for name, f := range m {
			p.Fleets[name] = FleetPoint{
				Revision: f.Revision, Weight: f.Weight, Requests: f.Requests,
				RequestRate: float64(f.Requests) / s.o.Every.Seconds(),
				ErrorRate:   f.ErrorRate(), P99Seconds: f.P99.Seconds(),
			}
		}
		got[app] = p
	}
	cutoff := s.o.Now().Add(-s.o.Keep)
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
	for app, p := range got {
		pts := append(s.points[app], p)
		i := sort.Search(len(pts), func(i int) bool { return pts[i].Time.After(cutoff) })
		s.points[app] = append(pts[:0:0], pts[i:]...)
	}
	return firstErr
}

// Since returns the app's samples taken after t, oldest first (all of
// them for the zero time).
func (s *Sampler) Since(app string, t time.Time) []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	pts := s.points[app]
	i := sort.Search(len(pts), func(i int) bool { return pts[i].Time.After(t) })
	return append([]Point{}, pts[i:]...)
}
