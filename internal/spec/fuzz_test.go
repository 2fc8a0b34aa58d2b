package spec

import (
	"errors"
	"os"
	"reflect"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse. It must never panic; a failure
// must be an *Errors naming the file; a success must survive Marshal and
// Parse unchanged.
func FuzzParse(f *testing.F) {
	for _, file := range []string{"testdata/example.yaml", "testdata/minimal.yaml", "testdata/docker.yaml", "testdata/docker-minimal.yaml"} {
		src, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	for _, tc := range problemCases {
		if len(tc.yaml) < 4096 {
			f.Add([]byte(tc.yaml))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data, "fuzz.yaml")
		if err != nil {
			var errs *Errors
			if !errors.As(err, &errs) || len(errs.Problems) == 0 {
				t.Fatalf("error is not a non-empty *Errors: %#v", err)
			}
			for _, p := range errs.Problems {
				if p.File != "fuzz.yaml" || p.Message == "" {
					t.Fatalf("problem without file or message: %+v", p)
				}
			}
			return
		}
		out, err := s.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again, err := Parse(out, "again.yaml")
		if err != nil {
			t.Fatalf("the effective spec does not parse:\n%v\n%s", err, out)
		}
		if !reflect.DeepEqual(exported(s), exported(again)) {
			t.Fatalf("round trip changed the spec:\n%s", out)
		}
	})
}
