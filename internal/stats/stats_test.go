package stats

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.IsNaN(got) || math.Abs(got-want) > tol {
		t.Errorf("%s = %.12g, want %.12g (±%g)", what, got, want, tol)
	}
}

// points bins single values, each in its own narrow bucket.
func points(vs ...float64) Histogram {
	var h Histogram
	for _, v := range vs {
		h = append(h, Bin{Lo: v, Hi: v + 0.001, Count: 1})
	}
	return h
}

func TestNormalUpper(t *testing.T) {
	near(t, "Q(1.96)", NormalUpper(1.959963984540054), 0.025, 1e-12)
	near(t, "Q(2.326)", NormalUpper(2.3263478740408408), 0.01, 1e-12)
	near(t, "Q(-1)", NormalUpper(-1), 0.8413447460685429, 1e-12)
	near(t, "Q(0)", NormalUpper(0), 0.5, 0)
}

// TestMannWhitneyTextbook is the two-sample example of Hollander and
// Wolfe (1973, p. 69), also the example of R's wilcox.test: permeability
// of the chorioamnion at term (x) and at 12 to 26 weeks (y), with the
// alternative that x is greater. The published statistic is W = U = 35;
// the normal approximation with continuity correction, worked by hand, is
// z = (35 − 25 − ½)/√(10·5·16/12) = 1.16351, p = 0.12231.
func TestMannWhitneyTextbook(t *testing.T) {
	x := points(0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46)
	y := points(1.15, 0.88, 0.90, 0.74, 1.21)
	r, err := MannWhitneyGreater(x, y)
	if err != nil {
		t.Fatal(err)
	}
	if r.NA != 10 || r.NB != 5 {
		t.Fatalf("sizes %d, %d", r.NA, r.NB)
	}
	near(t, "U", r.U, 35, 0)
	near(t, "mean", r.Mean, 25, 0)
	near(t, "sd", r.SD, 8.16496580927726, 1e-12)
	near(t, "z", r.Z, 1.1635076278220096, 1e-12)
	near(t, "p", r.P, 0.12231180256349167, 1e-12)
	near(t, "CLES", r.CLES, 0.7, 1e-12)
	// The other way round: U' = nA·nB − U.
	r2, _ := MannWhitneyGreater(y, x)
	near(t, "U'", r2.U, 15, 0)
}

// TestMannWhitneyTies works a small example with ties by hand:
// A = {1, 1, 2, 3}, B = {1, 2, 2}, one bucket per value.
//
//	U: the 1s of A tie with B's 1 (½ each): 1; A's 2 beats B's 1 and ties
//	   with B's two 2s: 2; A's 3 beats all three: 3. U = 6.
//	ties: buckets of 3, 3 and 1 values: Σ(t³−t) = 24 + 24 + 0 = 48.
//	Var U = 4·3/12 · (8 − 48/(7·6)) = 6.857143; z = −½/2.618615 = −0.190941;
//	p = P(Z ≥ z) = 0.575714.
func TestMannWhitneyTies(t *testing.T) {
	a := Histogram{{1, 2, 2}, {2, 3, 1}, {3, 4, 1}}
	b := Histogram{{2, 3, 2}, {1, 2, 1}} // order does not matter
	r, err := MannWhitneyGreater(a, b)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "U", r.U, 6, 0)
	near(t, "sd²", r.SD*r.SD, 6.857142857142858, 1e-12)
	near(t, "z", r.Z, -0.19094065395649332, 1e-12)
	near(t, "p", r.P, 0.5757139555846293, 1e-12)
}

// TestMannWhitneyAgainstRanks checks the binned computation on random
// histograms against the definitions: U as a count over every pair, and
// the variance of U as the permutation variance of A's rank sum,
// nA·nB/(N(N−1)) · Σ(rᵢ − r̄)², from the mid-ranks of every value.
func TestMannWhitneyAgainstRanks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		nb := 1 + rng.IntN(8)
		var a, b Histogram
		for i := range nb {
			lo := float64(i)
			if c := rng.IntN(6); c > 0 {
				a = append(a, Bin{lo, lo + 1, uint64(c)})
			}
			if c := rng.IntN(6); c > 0 {
				b = append(b, Bin{lo, lo + 1, uint64(c)})
			}
		}
		na, nbv := a.Total(), b.Total()
		if na == 0 || nbv == 0 {
			continue
		}
		// Expand into values: the bucket index stands for the value.
		var va, vb []float64
		for _, x := range a {
			for range x.Count {
				va = append(va, x.Lo)
			}
		}
		for _, x := range b {
			for range x.Count {
				vb = append(vb, x.Lo)
			}
		}
		var u float64
		for _, x := range va {
			for _, y := range vb {
				switch {
				case x > y:
					u++
				case x == y:
					u += 0.5
				}
			}
		}
		all := append(append([]float64{}, va...), vb...)
		n := float64(len(all))
		var ss float64
		for _, x := range all {
			var less, same float64
			for _, y := range all {
				if y < x {
					less++
				} else if y == x {
					same++
				}
			}
			rank := less + (same+1)/2
			ss += (rank - (n+1)/2) * (rank - (n+1)/2)
		}
		wantVar := float64(na) * float64(nbv) / (n * (n - 1)) * ss
		r, err := MannWhitneyGreater(a, b)
		if err != nil {
			t.Fatal(err)
		}
		if r.U != u {
			t.Fatalf("trial %d: U = %g, want %g (a %v, b %v)", trial, r.U, u, a, b)
		}
		if math.Abs(r.SD*r.SD-wantVar) > 1e-9*math.Max(1, wantVar) {
			t.Fatalf("trial %d: Var U = %g, want %g (a %v, b %v)", trial, r.SD*r.SD, wantVar, a, b)
		}
	}
}

func TestMannWhitneyEdges(t *testing.T) {
	one := Histogram{{0.01, 0.02, 500}}
	r, err := MannWhitneyGreater(one, one)
	if err != nil || r.P != 1 || r.CLES != 0.5 {
		t.Errorf("every value tied: %+v, %v; want p 1, CLES 0.5", r, err)
	}
	r, err = MannWhitneyGreater(one, nil)
	if err != nil || r.P != 1 || r.NB != 0 {
		t.Errorf("empty B: %+v, %v", r, err)
	}
	_, err = MannWhitneyGreater(Histogram{{0, 2, 1}}, Histogram{{0, 1, 1}})
	if !errors.Is(err, ErrBins) {
		t.Errorf("different bucket bounds: %v, want ErrBins", err)
	}
	_, err = MannWhitneyGreater(Histogram{{0, 2, 1}}, Histogram{{1, 3, 1}})
	if !errors.Is(err, ErrBins) {
		t.Errorf("overlapping buckets: %v, want ErrBins", err)
	}
	open := Histogram{{1, math.Inf(1), 3}, {0, 1, 1}}
	if r, err := MannWhitneyGreater(open, Histogram{{0, 1, 4}}); err != nil || r.U != 3*4+1*2 {
		t.Errorf("an open last bucket: %+v, %v", r, err)
	}
}

// logBuckets bins values as the router does: four buckets per power of two.
func logBuckets(vs []float64) Histogram {
	counts := map[int]uint64{}
	for _, v := range vs {
		counts[int(math.Floor(4*math.Log2(v)))]++
	}
	var h Histogram
	for i, c := range counts {
		h = append(h, Bin{math.Exp2(float64(i) / 4), math.Exp2(float64(i+1) / 4), c})
	}
	return h
}

// TestMannWhitneyCalibration draws both samples from one distribution of
// latencies, binned: at a 1 % level the test must reject about 1 % of the
// time (ties make it somewhat conservative, never liberal). A 30 % slower
// A must be found nearly always with 200 values each.
func TestMannWhitneyCalibration(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	draw := func(n int, scale float64) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = scale * (20 + 5*rng.NormFloat64()*rng.NormFloat64() + rng.ExpFloat64())
			out[i] = math.Max(out[i], 1)
		}
		return out
	}
	const trials = 2000
	var fp, found int
	for range trials {
		r, _ := MannWhitneyGreater(logBuckets(draw(200, 1)), logBuckets(draw(200, 1)))
		if r.P < 0.01 {
			fp++
		}
		r, _ = MannWhitneyGreater(logBuckets(draw(200, 1.3)), logBuckets(draw(200, 1)))
		if r.P < 0.01 {
			found++
		}
	}
	if fp > trials*2/100 {
		t.Errorf("identical samples rejected %d of %d times at the 1%% level", fp, trials)
	}
	if found < trials*95/100 {
		t.Errorf("a 30%% slower sample found %d of %d times", found, trials)
	}
	t.Logf("identical: %d of %d rejected; 30%% slower: %d of %d found", fp, trials, found, trials)
}

func TestQuantile(t *testing.T) {
	h := Histogram{{20, 30, 50}, {10, 20, 50}}
	near(t, "median", h.Median(), 20, 1e-12)
	near(t, "p25", h.Quantile(0.25), 15, 1e-12)
	near(t, "p90", h.Quantile(0.9), 28, 1e-12)
	near(t, "empty", Histogram(nil).Median(), 0, 0)
	open := Histogram{{0, 1, 1}, {1, math.Inf(1), 9}}
	near(t, "open bucket", open.Median(), 1, 0)
}

func TestProportionGreater(t *testing.T) {
	// 30 of 100 against 40 of 200, by hand: pooled 70/300, SE 0.0518009,
	// z = 0.1/SE = 1.930468, p = 0.026774.
	r := ProportionGreater(30, 100, 40, 200)
	if r.Test != TestTwoProportionZ {
		t.Fatalf("test %s", r.Test)
	}
	near(t, "z", r.Z, 1.9304683562633604, 1e-12)
	near(t, "p", r.P, 0.02677441618215343, 1e-12)

	// Fisher's tea-tasting table, 3 of 4 against 1 of 4: P(X ≥ 3) =
	// (C(4,3)·C(4,1) + C(4,4)·C(4,0)) / C(8,4) = 17/70.
	r = ProportionGreater(3, 4, 1, 4)
	if r.Test != TestFisherExact {
		t.Fatalf("test %s", r.Test)
	}
	near(t, "tea", r.P, 17.0/70, 1e-12)
	// Three errors in A, none in B, 1000 requests each: every way the
	// three fall in A: C(1000,3)/C(2000,3).
	near(t, "sparse", FisherExactGreater(3, 1000, 0, 1000), 0.12481240620310155, 1e-12)
	near(t, "one of ten", FisherExactGreater(1, 10, 0, 10), 0.5, 1e-12)
	near(t, "none", FisherExactGreater(0, 10, 0, 10), 1, 1e-12)
	near(t, "A lower", ProportionGreater(10, 1000, 50, 1000).P, 1-1e-6, 1e-6)
	if r := ProportionGreater(0, 500, 0, 500); r.P != 1 {
		t.Errorf("no errors at all: p %g, want 1", r.P)
	}
	// Large samples with few errors: the z-test once 5 errors are expected
	// in each (z by hand: 4.5e-6 / √(3.75e-6·(1−3.75e-6)·1e-6)), Fisher's
	// test below that (4 errors, all in A: C(2M,4)/C(4M,4), about 1/16).
	r = ProportionGreater(12, 2_000_000, 3, 2_000_000)
	if r.Test != TestTwoProportionZ {
		t.Errorf("12 against 3 errors in 2M each: %s, want the z-test", r.Test)
	}
	near(t, "z, 12 against 3", r.Z, 2.323794364842969, 1e-9)
	near(t, "p, 12 against 3", r.P, 0.010068258956534896, 1e-9)
	r = ProportionGreater(4, 2_000_000, 0, 2_000_000)
	if r.Test != TestFisherExact {
		t.Errorf("4 against 0 errors in 2M each: %s, want Fisher's test", r.Test)
	}
	near(t, "p, 4 against 0", r.P, 0.06249990624998828, 1e-10) // log-gamma of millions: about 10 digits
}
