package main

import (
	"math"
	"os"
	"strings"
	"testing"
)

const wrkSample = `Running 5s test @ http://127.0.0.1:40299/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms    1.52ms  40.11ms   90.12%
    Req/Sec    16.20k     1.10k   18.90k    70.00%
  Latency Distribution
     50%  750.00us
     75%    2.39ms
     90%    3.50ms
     99%    1.20s
  161234 requests in 5.00s, 27.68MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 7
Requests/sec:  32246.80
Transfer/sec:      5.54MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkSample)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{Requests: 161234, Seconds: 5, ReqPerSec: 32246.8, P50Ms: 0.75, P99Ms: 1200, SocketErrors: 10, BadStatus: 7}
	if r != want {
		t.Errorf("parseWrk = %+v, want %+v", r, want)
	}
	if r.Errors() != 17 {
		t.Errorf("Errors() = %d, want 17", r.Errors())
	}
}

func TestParseWrkWithoutErrorLines(t *testing.T) {
	r, err := parseWrk(`  Latency Distribution
     50%    1.00ms
     99%    9.00ms
  10 requests in 1.00m, 1.00KB read
Requests/sec:      0.17
`)
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors() != 0 || r.Seconds != 60 || r.P99Ms != 9 {
		t.Errorf("parseWrk = %+v", r)
	}
}

func TestParseWrkRejectsMissingLatency(t *testing.T) {
	if _, err := parseWrk("  10 requests in 1.00s, 1KB read\nRequests/sec: 10\n"); err == nil {
		t.Error("want an error when --latency output is missing")
	}
}

func TestParseStat(t *testing.T) {
	// A command name with spaces and a ')' must not shift the fields.
	line := "4242 (nginx: worker) x) S 4240 4240 4240 0 -1 4194624 100 0 0 0 250 75 0 0 20 0 1 0 123 0 0"
	ppid, ticks, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if ppid != 4240 || ticks != 325 {
		t.Errorf("parseStat = %d, %d; want 4240, 325", ppid, ticks)
	}
}

func TestTicksDelta(t *testing.T) {
	before := map[int]uint64{1: 100, 2: 50, 3: 10}
	after := map[int]uint64{1: 150, 2: 80, 4: 5} // 3 exited, 4 is new
	if got := ticksDelta(before, after); got != 85 {
		t.Errorf("ticksDelta = %d, want 85", got)
	}
}

func TestMedian(t *testing.T) {
	cases := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, c := range cases {
		if got := median(c.in); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestTreeTicksFindsSelf(t *testing.T) {
	self := os.Getpid()
	tree, err := treeTicks(self)
	if err != nil {
		t.Skip("no /proc here:", err)
	}
	if _, ok := tree[self]; !ok {
		t.Errorf("tree of pid %d does not contain itself", self)
	}
}

func TestPostScriptBodySize(t *testing.T) {
	s := postScript(2048)
	for _, want := range []string{`wrk.method = "POST"`, `string.rep("x", 2037)`, `'{"data":"'`, `'"}'`} {
		if !strings.Contains(s, want) {
			t.Errorf("postScript(2048) lacks %s:\n%s", want, s)
		}
	}
}
