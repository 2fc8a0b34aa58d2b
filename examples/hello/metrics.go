package main

import (
	"fmt"
	"net/http"
	"sync/atomic"
)

// counts are the answers of / and /slow, for GET /metrics: an app's own
// metrics, which a Prometheus finds through the server's service
// discovery (GET /api/v1/prometheus/targets) and a check rule can query.
type counts struct {
	ok, failed atomic.Int64
}

// answered counts one answer of / or /slow.
func (c *counts) answered(failed bool) {
	if failed {
		c.failed.Add(1)
	} else {
		c.ok.Add(1)
	}
}

// metrics answers in Prometheus's text format.
func (a *app) metrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	fmt.Fprintf(w, "# HELP hello_requests_total Requests to / and /slow answered, by status code.\n"+
		"# TYPE hello_requests_total counter\n"+
		"hello_requests_total{code=\"200\"} %d\n"+
		"hello_requests_total{code=\"500\"} %d\n", a.counts.ok.Load(), a.counts.failed.Load())
}
