package stats

import "math"

// NormalUpper is the upper tail of the standard normal distribution:
// P(Z ≥ z).
func NormalUpper(z float64) float64 { return 0.5 * math.Erfc(z/math.Sqrt2) }
