package appspec

import (
	"os"
	"testing"
)

// FuzzParse: any input gives an appspec or problems, never a panic, and a
// parsed appspec maps without one either.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../../examples/codedeploy/appspec.yml"); err == nil {
		f.Add(b)
	}
	for _, tc := range problemCases {
		f.Add([]byte(tc.yaml))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Parse(data, "appspec.yml")
		if (a == nil) == (err == nil) {
			t.Fatalf("want an appspec or an error, got %v and %v", a, err)
		}
		if a != nil {
			a.BluegreenHooks()
			a.NotMapped()
		}
	})
}
