package router

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// Latency buckets are log-linear: four sub-buckets per power of two of microseconds,
// so a percentile read from them is within about 12 % of the true value.
const (
	subBuckets  = 4
	minOctave   = 4  // everything under 16µs shares bucket 0
	maxOctave   = 27 // about 134 s; slower requests share the last bucket
	latBuckets  = (maxOctave-minOctave)*subBuckets + 2
	windowSlots = 300 // one-second slots: enough for the 5-minute window
)

// Windows are the sliding windows every snapshot reports; a query may add one
// more of its own length (see StatsQuery).
var Windows = []struct {
	Name string
	Dur  time.Duration
}{{"10s", 10 * time.Second}, {"1m", time.Minute}, {"5m", 5 * time.Minute}}

func latBucket(d time.Duration) int {
	us := uint64(d / time.Microsecond)
	if us < 1<<minOctave {
		return 0
	}
	oct := bits.Len64(us) - 1 // us in [2^oct, 2^(oct+1))
	if oct >= maxOctave {
		return latBuckets - 1
	}
	sub := int(us>>(oct-2)) & (subBuckets - 1)
	return 1 + (oct-minOctave)*subBuckets + sub
}

// bucketUpper is the upper bound of bucket i in seconds.
func bucketUpper(i int) float64 {
	if i == 0 {
		return float64(uint64(1)<<minOctave) / 1e6
	}
	if i >= latBuckets-1 {
		return math.Inf(1)
	}
	oct := (i-1)/subBuckets + minOctave
	sub := (i - 1) % subBuckets
	lo := float64(uint64(1) << oct)
	return (lo + lo*float64(sub+1)/subBuckets) / 1e6
}

func bucketLower(i int) float64 {
	if i == 0 {
		return 0
	}
	return bucketUpper(i - 1)
}

// slot holds one second of observations.
type slot struct {
	sec     atomic.Int64
	classes [6]atomic.Uint64 // index 1..5: 1xx..5xx
	lat     [latBuckets]atomic.Uint64
	in, out atomic.Uint64
}

// metrics accumulates what one fleet or one target served. Recording is lock-free;
// the rare reset of a slot at the turn of a second takes a mutex.
type metrics struct {
	// slots are allocated at the first record: they take about 250 KB,
	// and a router in front of a thousand apps holds two metrics per
	// target and per fleet, most of which may never see a request.
	slots   atomic.Pointer[[windowSlots]slot]
	resetMu sync.Mutex

	classes   [6]atomic.Uint64
	lat       [latBuckets]atomic.Uint64
	latSumNs  atomic.Uint64
	in, out   atomic.Uint64
	inflight  atomic.Int64
	upgraded  atomic.Int64
	streaming atomic.Int64
	// timeouts counts requests answered 504 because the target did not
	// answer within the app's timeout (they are in the 5xx class too).
	timeouts atomic.Uint64
}

func statusClass(code int) int {
	c := code / 100
	if c < 1 || c > 5 {
		return 5
	}
	return c
}

func (m *metrics) record(now time.Time, status int, d time.Duration, in, out int64) {
	sec := now.Unix()
	s := &m.window1s()[sec%windowSlots]
	if s.sec.Load() != sec {
		m.resetSlot(s, sec)
	}
	c, b := statusClass(status), latBucket(d)
	s.classes[c].Add(1)
	s.lat[b].Add(1)
	m.classes[c].Add(1)
	m.lat[b].Add(1)
	m.latSumNs.Add(uint64(d))
	if in > 0 {
		s.in.Add(uint64(in))
		m.in.Add(uint64(in))
	}
	if out > 0 {
		s.out.Add(uint64(out))
		m.out.Add(uint64(out))
	}
}

// addBytes counts body bytes outside a request's own record, such as what an
// upgraded connection carried.
func (m *metrics) addBytes(now time.Time, in, out int64) {
	sec := now.Unix()
	s := &m.window1s()[sec%windowSlots]
	if s.sec.Load() != sec {
		m.resetSlot(s, sec)
	}
	s.in.Add(uint64(in))
	s.out.Add(uint64(out))
	m.in.Add(uint64(in))
	m.out.Add(uint64(out))
}

// window1s returns the one-second slots, allocating them the first time.
func (m *metrics) window1s() *[windowSlots]slot {
	if p := m.slots.Load(); p != nil {
		return p
	}
	m.resetMu.Lock()
	defer m.resetMu.Unlock()
	if p := m.slots.Load(); p != nil {
		return p
	}
	p := new([windowSlots]slot)
	m.slots.Store(p)
	return p
}

func (m *metrics) resetSlot(s *slot, sec int64) {
	m.resetMu.Lock()
	defer m.resetMu.Unlock()
	if s.sec.Load() >= sec {
		return
	}
	for i := range s.classes {
		s.classes[i].Store(0)
	}
	for i := range s.lat {
		s.lat[i].Store(0)
	}
	s.in.Store(0)
	s.out.Store(0)
	s.sec.Store(sec)
}

// WindowStats summarises one sliding window.
type WindowStats struct {
	Requests  uint64            `json:"requests"`
	Rate      float64           `json:"rate"` // requests per second
	ByClass   map[string]uint64 `json:"by_class"`
	ErrorRate float64           `json:"error_rate"` // share of 5xx
	P50       float64           `json:"p50_seconds"`
	P90       float64           `json:"p90_seconds"`
	P95       float64           `json:"p95_seconds"`
	P99       float64           `json:"p99_seconds"`
	BytesIn   uint64            `json:"bytes_in"`
	BytesOut  uint64            `json:"bytes_out"`
	// Latency is the window's histogram, its non-empty buckets in
	// ascending order: only in a fleet's window asked for by a query, for
	// the statistical judge of deployments.
	Latency []LatencyBucket `json:"latency,omitempty"`
}

// LatencyBucket counts the requests that took From to To seconds (To
// excluded; no To for the last bucket, about 134 s and more).
type LatencyBucket struct {
	From  float64 `json:"from_seconds"`
	To    float64 `json:"to_seconds,omitempty"`
	Count uint64  `json:"count"`
}

// Totals are the counters since the fleet or target appeared.
type Totals struct {
	Requests uint64            `json:"requests"`
	ByClass  map[string]uint64 `json:"by_class"`
	BytesIn  uint64            `json:"bytes_in"`
	BytesOut uint64            `json:"bytes_out"`
	// Timeouts counts the requests a target did not answer within the
	// app's timeout (answered 504, and counted in 5xx as well).
	Timeouts uint64 `json:"timeouts,omitempty"`
}

var classNames = [6]string{"", "1xx", "2xx", "3xx", "4xx", "5xx"}

func (m *metrics) window(now time.Time, d time.Duration) WindowStats {
	ws, _ := m.windowLat(now, d)
	return ws
}

// windowHist is window with its latency histogram.
func (m *metrics) windowHist(now time.Time, d time.Duration) WindowStats {
	ws, lat := m.windowLat(now, d)
	for i, c := range lat {
		if c == 0 {
			continue
		}
		b := LatencyBucket{From: bucketLower(i), Count: c}
		if hi := bucketUpper(i); !math.IsInf(hi, 1) {
			b.To = hi
		}
		ws.Latency = append(ws.Latency, b)
	}
	return ws
}

// windowLat sums the window's slots: its stats, and the counts per latency
// bucket they came from.
func (m *metrics) windowLat(now time.Time, d time.Duration) (WindowStats, [latBuckets]uint64) {
	secs := int64(d / time.Second)
	last := now.Unix()
	var classes [6]uint64
	var lat [latBuckets]uint64
	var ws WindowStats
	slots := m.slots.Load()
	if slots == nil {
		secs = 0 // nothing recorded yet
	}
	for i := range min(secs, windowSlots) {
		sec := last - i
		s := &slots[sec%windowSlots]
		if s.sec.Load() != sec {
			continue
		}
		for c := range classes {
			classes[c] += s.classes[c].Load()
		}
		for b := range lat {
			lat[b] += s.lat[b].Load()
		}
		ws.BytesIn += s.in.Load()
		ws.BytesOut += s.out.Load()
	}
	ws.ByClass = make(map[string]uint64, 5)
	for c := 1; c < 6; c++ {
		ws.Requests += classes[c]
		ws.ByClass[classNames[c]] = classes[c]
	}
	ws.Rate = float64(ws.Requests) / d.Seconds()
	if ws.Requests > 0 {
		ws.ErrorRate = float64(classes[5]) / float64(ws.Requests)
	}
	ws.P50 = quantile(lat[:], ws.Requests, 0.50)
	ws.P90 = quantile(lat[:], ws.Requests, 0.90)
	ws.P95 = quantile(lat[:], ws.Requests, 0.95)
	ws.P99 = quantile(lat[:], ws.Requests, 0.99)
	return ws, lat
}

// quantile interpolates linearly inside the bucket that holds rank q·n.
func quantile(lat []uint64, n uint64, q float64) float64 {
	if n == 0 {
		return 0
	}
	rank := q * float64(n)
	var seen float64
	for i, c := range lat {
		if c == 0 {
			continue
		}
		if seen+float64(c) >= rank {
			lo, hi := bucketLower(i), bucketUpper(i)
			if math.IsInf(hi, 1) {
				return lo
			}
			return lo + (hi-lo)*(rank-seen)/float64(c)
		}
		seen += float64(c)
	}
	return bucketLower(len(lat) - 1)
}

func (m *metrics) totals() Totals {
	t := Totals{ByClass: make(map[string]uint64, 5), BytesIn: m.in.Load(), BytesOut: m.out.Load(), Timeouts: m.timeouts.Load()}
	for c := 1; c < 6; c++ {
		v := m.classes[c].Load()
		t.Requests += v
		t.ByClass[classNames[c]] = v
	}
	return t
}
