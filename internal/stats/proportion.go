package stats

import "math"

// Proportion is the outcome of a one-sided test asking whether the share
// of events (errors among requests) is higher in A than in B.
type Proportion struct {
	// Test is "two_proportion_z" or "fisher_exact".
	Test string
	// XA of NA, and XB of NB, are the events and the trials.
	XA, NA, XB, NB uint64
	// Z is the z statistic of the two-proportion test (0 for Fisher's).
	Z float64
	// P is the one-sided p-value: the chance of A's share being this much
	// higher or more if A and B had the same rate.
	P float64
}

// Test names, as recorded with verdicts.
const (
	TestMannWhitney    = "mann_whitney_u"
	TestTwoProportionZ = "two_proportion_z"
	TestFisherExact    = "fisher_exact"
)

// ProportionGreater tests whether xa/na is higher than xb/nb. It uses the
// two-proportion z-test (pooled) when every expected count of the 2×2
// table (events and non-events of A and B, were the rates equal) is at
// least 5, the usual condition for its normal approximation, and Fisher's
// exact test otherwise, as with few errors in either sample.
func ProportionGreater(xa, na, xb, nb uint64) Proportion {
	r := Proportion{XA: xa, NA: na, XB: xb, NB: nb, P: 1}
	if na == 0 || nb == 0 || xa > na || xb > nb {
		r.Test = TestTwoProportionZ
		return r
	}
	n, k := float64(na+nb), float64(xa+xb)
	least := math.Min(math.Min(k, n-k)*float64(na)/n, math.Min(k, n-k)*float64(nb)/n)
	if least >= 5 {
		r.Test = TestTwoProportionZ
		r.Z, r.P = twoProportionZ(xa, na, xb, nb)
		return r
	}
	r.Test = TestFisherExact
	r.P = FisherExactGreater(xa, na, xb, nb)
	return r
}

// twoProportionZ is the pooled two-proportion z-test, one-sided (A
// higher): z = (pA − pB) / √(p(1−p)(1/nA + 1/nB)), p the pooled share.
func twoProportionZ(xa, na, xb, nb uint64) (z, p float64) {
	pa, pb := float64(xa)/float64(na), float64(xb)/float64(nb)
	pool := float64(xa+xb) / float64(na+nb)
	se := math.Sqrt(pool * (1 - pool) * (1/float64(na) + 1/float64(nb)))
	if se == 0 {
		return 0, 1 // no events at all, or nothing but: no difference
	}
	z = (pa - pb) / se
	return z, NormalUpper(z)
}

// FisherExactGreater is the one-sided p-value of Fisher's exact test that
// A's share is higher: P(X ≥ xa) for X hypergeometric, the number of the
// xa+xb events that fall in A's na of the na+nb trials.
func FisherExactGreater(xa, na, xb, nb uint64) float64 {
	if na == 0 || nb == 0 || xa > na || xb > nb {
		return 1
	}
	n, k := na+nb, xa+xb
	top := min(k, na)
	mode := (float64(k) + 1) * (float64(na) + 1) / (float64(n) + 2)
	var sum float64
	for x := xa; x <= top; x++ {
		if k-x > nb {
			continue // A cannot hold this few of the events
		}
		term := math.Exp(logChoose(k, x) + logChoose(n-k, na-x) - logChoose(n, na))
		sum += term
		// Past the mode the terms only shrink: stop once they no longer
		// change the sum.
		if float64(x) > mode && term < sum*1e-17 {
			break
		}
	}
	return math.Min(sum, 1)
}

// logChoose is log C(n, k).
func logChoose(n, k uint64) float64 {
	a, _ := math.Lgamma(float64(n) + 1)
	b, _ := math.Lgamma(float64(k) + 1)
	c, _ := math.Lgamma(float64(n-k) + 1)
	return a - b - c
}
