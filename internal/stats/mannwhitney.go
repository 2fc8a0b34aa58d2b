package stats

import "math"

// MannWhitney is the outcome of a one-sided Mann-Whitney U test (the
// Wilcoxon rank-sum test) asking whether values of A tend to be larger
// than values of B.
type MannWhitney struct {
	// NA and NB are the sample sizes.
	NA, NB uint64
	// U counts the pairs (a, b) with a > b, plus half the pairs that tie.
	U float64
	// Mean and SD are U's mean and standard deviation if A and B came from
	// the same distribution, the deviation corrected for ties.
	Mean, SD float64
	// Z is (U − Mean − ½) / SD: the normal approximation with a continuity
	// correction towards the null hypothesis.
	Z float64
	// P is the one-sided p-value, P(Z ≥ z): the chance of a U this large
	// or larger if A and B came from the same distribution. 1 when every
	// value ties (nothing tells A from B).
	P float64
	// CLES, the common-language effect size, is U / (NA·NB): the chance
	// that a value of A is larger than a value of B, ties counted half.
	// 0.5 means no difference.
	CLES float64
}

// MannWhitneyGreater tests whether the values binned in a tend to be
// larger than those in b. Values in the same bucket are ties: each gets
// the bucket's mid-rank (the mean of the ranks they share), and the
// variance of U is corrected for the ties of every bucket,
//
//	Var U = nA·nB/12 · ((N+1) − Σ(t³−t) / (N(N−1))),
//
// t being a bucket's count in both samples together and N = nA+nB. The
// p-value uses the normal approximation, good from about 20 values per
// sample. Both samples must be binned on the same buckets (ErrBins).
func MannWhitneyGreater(a, b Histogram) (MannWhitney, error) {
	buckets, err := lineUp(a, b)
	if err != nil {
		return MannWhitney{}, err
	}
	var r MannWhitney
	var below, ties float64 // b values in lower buckets; Σ(t³−t)
	var na, nb float64
	for _, p := range buckets {
		// Each a in this bucket beats every b below it and ties with
		// the b's in it.
		r.U += p.a * (below + p.b/2)
		below += p.b
		na += p.a
		nb += p.b
		t := p.a + p.b
		ties += t*t*t - t
	}
	r.NA, r.NB = uint64(na), uint64(nb)
	if na == 0 || nb == 0 {
		r.P, r.CLES = 1, 0.5
		return r, nil
	}
	n := na + nb
	r.Mean = na * nb / 2
	r.CLES = r.U / (na * nb)
	v := na * nb / 12 * ((n + 1) - ties/(n*(n-1)))
	if v <= 0 {
		// Every value in one bucket: no evidence either way.
		r.P = 1
		return r, nil
	}
	r.SD = math.Sqrt(v)
	r.Z = (r.U - r.Mean - 0.5) / r.SD
	r.P = NormalUpper(r.Z)
	return r, nil
}
