package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what one wrk run reports.
type wrkResult struct {
	Requests     int64   `json:"requests"`
	Seconds      float64 `json:"seconds"`
	ReqPerSec    float64 `json:"req_per_s"`
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
	SocketErrors int64   `json:"socket_errors"`
	BadStatus    int64   `json:"non_2xx_3xx"`
}

// Errors counts failed requests: socket errors plus non-2xx/3xx answers.
func (r wrkResult) Errors() int64 { return r.SocketErrors + r.BadStatus }

// runWrk drives url for the given duration and returns wrk's output and the
// CPU time wrk itself used. script, when set, is a wrk Lua script that shapes
// the requests (the POST workload).
func runWrk(ctx context.Context, threads, conns, seconds int, url, script string) (string, time.Duration, error) {
	// wrk stops by itself; the extra margin only guards against a hang.
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds+30)*time.Second)
	defer cancel()
	args := []string{"-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(seconds) + "s", "--latency"}
	if script != "" {
		args = append(args, "-s", script)
	}
	cmd := exec.CommandContext(ctx, "wrk", append(args, url)...)
	out, err := cmd.CombinedOutput()
	var cpu time.Duration
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return string(out), cpu, fmt.Errorf("wrk: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return string(out), cpu, nil
}

var (
	reRequests = regexp.MustCompile(`(\d+) requests in ([\d.]+)(us|ms|s|m|h)`)
	reRPS      = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reP50      = regexp.MustCompile(`\n\s+50%\s+([\d.]+)(us|ms|s|m|h)`)
	reP99      = regexp.MustCompile(`\n\s+99%\s+([\d.]+)(us|ms|s|m|h)`)
	reSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reBad      = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// parseWrk reads the summary wrk prints with --latency.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := reRequests.FindStringSubmatch(out)
	if m == nil {
		return r, errors.New("wrk output has no request count")
	}
	r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	r.Seconds = toMs(m[2], m[3]) / 1000
	m = reRPS.FindStringSubmatch(out)
	if m == nil {
		return r, errors.New("wrk output has no Requests/sec")
	}
	r.ReqPerSec, _ = strconv.ParseFloat(m[1], 64)
	m = reP50.FindStringSubmatch(out)
	if m == nil {
		return r, errors.New("wrk output has no latency distribution (--latency)")
	}
	r.P50Ms = toMs(m[1], m[2])
	if m = reP99.FindStringSubmatch(out); m != nil {
		r.P99Ms = toMs(m[1], m[2])
	}
	if m = reSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.SocketErrors += n
		}
	}
	if m = reBad.FindStringSubmatch(out); m != nil {
		r.BadStatus, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return r, nil
}

// toMs converts a wrk time value with its unit to milliseconds.
func toMs(value, unit string) float64 {
	v, _ := strconv.ParseFloat(value, 64)
	switch unit {
	case "us":
		return v / 1000
	case "ms":
		return v
	case "s":
		return v * 1000
	case "m":
		return v * 60 * 1000
	case "h":
		return v * 3600 * 1000
	}
	return v
}

// A workload is the kind of request wrk sends.
const (
	workloadGet  = "get"  // GET /, no body: the plain request
	workloadPost = "post" // POST / with a small JSON body of -post-bytes and its Content-Length
)

// postScript is the wrk script of the POST workload: every request carries the
// same body of exactly size bytes, which wrk sends with a Content-Length.
func postScript(size int) string {
	const open, close = `{"data":"`, `"}`
	pad := max(size-len(open)-len(close), 0)
	return fmt.Sprintf(`-- Written by proxybench: a POST with a %d-byte JSON body, as an API call sends.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '%s' .. string.rep("x", %d) .. '%s'
`, size, open, pad, close)
}
