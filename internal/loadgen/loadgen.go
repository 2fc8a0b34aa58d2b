// Package loadgen drives steady HTTP load at a fixed rate and records every
// request: when it started and ended, its status, and a chosen response header
// (which fleet answered). Tests and the quickstart run it as a separate process.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Options say what to load and how hard. Every run is bounded by Duration and MaxRequests.
type Options struct {
	URL         string
	Host        string        // Host header, when set
	Rate        int           // requests per second, spread evenly
	Duration    time.Duration // how long to send
	MaxRequests int           // stop after this many (0: Rate × Duration)
	Concurrency int           // requests in flight at most
	Header      string        // response header recorded per request (e.g. X-Fleet)
	Timeout     time.Duration // per request
	NewConns    bool          // every request on a connection of its own (no keep-alive)
}

// Record is one request.
type Record struct {
	Start, End time.Time
	Status     int    // 0 when the request failed without a response
	Value      string // the recorded response header
	Err        string

	refused bool
}

// Failed reports whether the request did not get a 2xx/3xx answer.
func (r Record) Failed() bool { return r.Status < 200 || r.Status >= 400 }

// Summary is what a run did.
type Summary struct {
	Sent     int            `json:"sent"`
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	Refused  int            `json:"refused"` // failed because the connection was refused
	Seconds  float64        `json:"seconds"`
	Rate     float64        `json:"rate"`
	ByValue  map[string]int `json:"by_value"`
	ByStatus map[int]int    `json:"by_status"`
	Errors   []string       `json:"errors,omitempty"` // the first few failures
}

// Run sends the load and calls record (from several goroutines, serialised) for each request.
// When ctx ends, no new request starts; those in flight finish and are recorded.
func Run(ctx context.Context, o Options, record func(Record)) (Summary, error) {
	if o.URL == "" || o.Rate <= 0 || o.Duration <= 0 {
		return Summary{}, errors.New("loadgen: URL, a positive rate and a positive duration are required")
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	total := o.MaxRequests
	if total <= 0 {
		total = int(float64(o.Rate) * o.Duration.Seconds())
	}
	client := &http.Client{
		Timeout: o.Timeout,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: o.Concurrency,
			MaxConnsPerHost:     o.Concurrency,
			DisableCompression:  true,
			DisableKeepAlives:   o.NewConns,
		},
	}
	defer client.CloseIdleConnections()

	s := Summary{ByValue: map[string]int{}, ByStatus: map[int]int{}}
	var mu sync.Mutex
	var next atomic.Int64
	interval := time.Second / time.Duration(o.Rate)
	start := time.Now()
	deadline := start.Add(o.Duration)
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if int(i) >= total {
					return
				}
				at := start.Add(time.Duration(i) * interval)
				if at.After(deadline) {
					return
				}
				if d := time.Until(at); d > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(d):
					}
				}
				if ctx.Err() != nil {
					return
				}
				// A request once sent is let finish (within Timeout): ending
				// the run stops new requests, it does not fail the ones in
				// flight.
				rec := do(context.WithoutCancel(ctx), client, o)
				mu.Lock()
				s.Sent++
				s.ByStatus[rec.Status]++
				if rec.Failed() {
					s.Failed++
					if rec.refused {
						s.Refused++
					}
					if len(s.Errors) < 10 {
						s.Errors = append(s.Errors, fmt.Sprintf("status %d: %s", rec.Status, rec.Err))
					}
				} else {
					s.OK++
					s.ByValue[rec.Value]++
				}
				if record != nil {
					record(rec)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	s.Seconds = time.Since(start).Seconds()
	s.Rate = float64(s.Sent) / s.Seconds
	return s, ctx.Err()
}

func do(ctx context.Context, c *http.Client, o Options) Record {
	rec := Record{Start: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
	if err != nil {
		rec.End, rec.Err = time.Now(), err.Error()
		return rec
	}
	if o.Host != "" {
		req.Host = o.Host
	}
	resp, err := c.Do(req)
	if err != nil {
		rec.End, rec.Err = time.Now(), err.Error()
		rec.refused = errors.Is(err, syscall.ECONNREFUSED)
		return rec
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	rec.End = time.Now()
	rec.Status = resp.StatusCode
	if o.Header != "" {
		rec.Value = resp.Header.Get(o.Header)
	}
	if err != nil {
		rec.Status, rec.Err = 0, "reading body: "+err.Error()
	} else if rec.Failed() {
		rec.Err = string(body[:min(len(body), 200)])
	}
	return rec
}

// SortedValues lists the recorded header values, most frequent first.
func (s Summary) SortedValues() []string {
	vals := make([]string, 0, len(s.ByValue))
	for v := range s.ByValue {
		vals = append(vals, v)
	}
	sort.Slice(vals, func(i, j int) bool { return s.ByValue[vals[i]] > s.ByValue[vals[j]] })
	return vals
}
