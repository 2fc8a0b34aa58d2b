// Package stats holds the statistical tests the deployment judge runs on
// what the router measures: latencies as histograms (counts per bucket,
// not single values) and answers as counts of errors among requests. Every
// function is pure and works in float64; see docs/engine.md for how the
// judge uses them.
package stats

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Bin is one bucket of a histogram: Count values in [Lo, Hi). Hi is
// +Inf for an open last bucket.
type Bin struct {
	Lo, Hi float64
	Count  uint64
}

// Histogram is a set of bins that do not overlap, in any order. Two
// histograms compared with each other must use the same bucket bounds
// (bins of the same Lo have the same Hi).
type Histogram []Bin

// Total is the number of values in the histogram.
func (h Histogram) Total() uint64 {
	var n uint64
	for _, b := range h {
		n += b.Count
	}
	return n
}

// Quantile estimates the q-quantile (0 ≤ q ≤ 1): it finds the bin holding
// rank q·n and interpolates linearly inside it, as if its values were
// spread evenly over [Lo, Hi). An open bin gives its Lo. An empty
// histogram gives 0.
func (h Histogram) Quantile(q float64) float64 {
	bins := sorted(h)
	n := h.Total()
	if n == 0 {
		return 0
	}
	rank := q * float64(n)
	var seen float64
	for _, b := range bins {
		if b.Count == 0 {
			continue
		}
		c := float64(b.Count)
		if seen+c >= rank {
			if math.IsInf(b.Hi, 1) {
				return b.Lo
			}
			return b.Lo + (b.Hi-b.Lo)*(rank-seen)/c
		}
		seen += c
	}
	return bins[len(bins)-1].Lo
}

// Median is Quantile(0.5).
func (h Histogram) Median() float64 { return h.Quantile(0.5) }

func sorted(h Histogram) Histogram {
	out := slices.Clone(h)
	slices.SortFunc(out, func(a, b Bin) int { return cmpFloat(a.Lo, b.Lo) })
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ErrBins reports histograms whose bins cannot be lined up.
var ErrBins = errors.New("histograms with different buckets")

// pair is one bucket of two histograms lined up: a and b values in it.
type pair struct{ a, b float64 }

// lineUp merges two histograms bucket by bucket, in ascending order. The
// buckets must be the same in both (a bucket of one may be missing from
// the other, as an empty one) and must not overlap.
func lineUp(a, b Histogram) ([]pair, error) {
	type bucket struct {
		hi   float64
		a, b float64
	}
	byLo := map[float64]*bucket{}
	add := func(h Histogram, first bool) error {
		for _, bin := range h {
			if math.IsNaN(bin.Lo) || math.IsNaN(bin.Hi) || !(bin.Hi > bin.Lo) {
				return fmt.Errorf("%w: bucket [%g, %g) is empty or malformed", ErrBins, bin.Lo, bin.Hi)
			}
			k := byLo[bin.Lo]
			if k == nil {
				k = &bucket{hi: bin.Hi}
				byLo[bin.Lo] = k
			} else if k.hi != bin.Hi {
				return fmt.Errorf("%w: [%g, %g) and [%g, %g)", ErrBins, bin.Lo, k.hi, bin.Lo, bin.Hi)
			}
			if first {
				k.a += float64(bin.Count)
			} else {
				k.b += float64(bin.Count)
			}
		}
		return nil
	}
	if err := add(a, true); err != nil {
		return nil, err
	}
	if err := add(b, false); err != nil {
		return nil, err
	}
	los := make([]float64, 0, len(byLo))
	for lo := range byLo {
		los = append(los, lo)
	}
	slices.Sort(los)
	out := make([]pair, 0, len(los))
	for i, lo := range los {
		k := byLo[lo]
		if i+1 < len(los) && k.hi > los[i+1] {
			return nil, fmt.Errorf("%w: [%g, %g) overlaps the bucket from %g", ErrBins, lo, k.hi, los[i+1])
		}
		out = append(out, pair{k.a, k.b})
	}
	return out, nil
}
