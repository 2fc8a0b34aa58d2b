package router

import (
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// failureWarningEvery is how often, at most, a listener logs that its TLS
// handshakes fail: often enough to be seen, never a line per connection
// (garbage or a flood of ClientHellos would otherwise flood the log too).
const failureWarningEvery = time.Minute

// failureWarning remembers what a TLS listener last said of its failures.
type failureWarning struct {
	mu              sync.Mutex
	at              time.Time
	failed, evicted uint64 // the counters when it last spoke
}

// warnFailures logs, at most once per failureWarningEvery, how many
// handshakes failed or were evicted since the last warning, with the
// latest error as an example.
func (f *tlsFront) warnFailures(last error) {
	now := time.Now()
	w := &f.warned
	w.mu.Lock()
	if !w.at.IsZero() && now.Sub(w.at) < failureWarningEvery {
		w.mu.Unlock()
		return
	}
	failed, evicted := f.failed.Load(), f.evicted.Load()
	df, de := failed-w.failed, evicted-w.evicted
	since := w.at
	w.at, w.failed, w.evicted = now, failed, evicted
	w.mu.Unlock()
	args := []any{"listener", f.addr, "failed", df, "evicted", de, "latest", last.Error()}
	if !since.IsZero() {
		args = append(args, "since", since.UTC().Format(time.RFC3339))
	}
	f.r.log.Warn("TLS handshakes failing (clients without a usable certificate, garbage, handshakes that never end, or a flood of them); other connections are served", args...)
}

var descHandshakes = prometheus.NewDesc("bluegreen_router_tls_handshakes_total",
	"TLS handshakes on a listener by result: ok, failed (an error or the handshake deadline), evicted (closed unfinished to make room for newer ones).",
	[]string{"listener", "result"}, nil)

// tlsCollector exposes the handshake counters of the TLS listeners.
type tlsCollector struct{ r *Router }

func (c tlsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descHandshakes }

func (c tlsCollector) Collect(ch chan<- prometheus.Metric) {
	c.r.mu.Lock()
	fronts := make(map[string]*tlsFront, len(c.r.listeners))
	for addr, l := range c.r.listeners {
		if l.front != nil {
			fronts[addr] = l.front
		}
	}
	c.r.mu.Unlock()
	addrs := make([]string, 0, len(fronts))
	for a := range fronts {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	for _, a := range addrs {
		f := fronts[a]
		for _, v := range []struct {
			result string
			n      uint64
		}{{"ok", f.done.Load()}, {"failed", f.failed.Load()}, {"evicted", f.evicted.Load()}} {
			ch <- prometheus.MustNewConstMetric(descHandshakes, prometheus.CounterValue, float64(v.n), a, v.result)
		}
	}
}
