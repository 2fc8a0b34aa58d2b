package main

import (
	"strings"
	"testing"
)

func TestSummary(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"start","Package":"m/a"}`,
		`{"Action":"run","Package":"m/a","Test":"TestOK"}`,
		`{"Action":"pass","Package":"m/a","Test":"TestOK","Elapsed":0.1}`,
		`{"Action":"run","Package":"m/a","Test":"TestSlow"}`,
		`{"Action":"pass","Package":"m/a","Test":"TestSlow","Elapsed":12.5}`,
		`{"Action":"run","Package":"m/a","Test":"TestBad"}`,
		`{"Action":"output","Package":"m/a","Test":"TestBad","Output":"    a_test.go:9: got 2, want 3\n"}`,
		`{"Action":"fail","Package":"m/a","Test":"TestBad","Elapsed":0.2}`,
		`{"Action":"fail","Package":"m/a","Elapsed":13}`,
		`{"ImportPath":"m/b","Action":"build-output","Output":"b.go:3:1: syntax error\n"}`,
		`{"ImportPath":"m/b","Action":"build-fail"}`,
		`{"Action":"start","Package":"m/b"}`,
		`{"Action":"fail","Package":"m/b","Elapsed":0}`,
		`gofmt says nothing`,
	}, "\n")
	var out strings.Builder
	if !run(strings.NewReader(in), &out) {
		t.Fatal("a run with failures reported none")
	}
	got := out.String()
	for _, want := range []string{
		"  pass a TestSlow (12.5s)\n",
		"  FAIL a TestBad (0.2s)\n      a_test.go:9: got 2, want 3\n",
		"FAIL  m/b (0.0s)\n  b.go:3:1: syntax error\n",
		"gofmt says nothing\n",
		"packages: 0 passed, 2 failed; tests: 2 passed, 1 failed, 0 skipped;",
		"\n2 passed, 2 failed\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "TestOK") {
		t.Errorf("a quick passing test got a line:\n%s", got)
	}
}
