// Command bgload sends steady HTTP load at a fixed rate for a bounded time and
// prints a JSON summary; with -records it writes one line per request:
// start and end (Unix nanoseconds), status and the recorded header.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"bluegreen/internal/loadgen"
)

func main() {
	var o loadgen.Options
	flag.StringVar(&o.URL, "url", "", "URL to load (required)")
	flag.StringVar(&o.Host, "host", "", "Host header")
	flag.IntVar(&o.Rate, "rate", 1000, "requests per second")
	flag.DurationVar(&o.Duration, "duration", 10*time.Second, "how long to send")
	flag.IntVar(&o.MaxRequests, "max", 0, "stop after this many requests (default rate × duration)")
	flag.IntVar(&o.Concurrency, "c", 16, "requests in flight at most")
	flag.StringVar(&o.Header, "header", "", "response header to record per request")
	records := flag.String("records", "", "file for one line per request")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var record func(loadgen.Record)
	if *records != "" {
		f, err := os.Create(*records)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bgload:", err)
			os.Exit(1)
		}
		w := bufio.NewWriter(f)
		defer func() {
			w.Flush()
			f.Close()
		}()
		record = func(r loadgen.Record) {
			v := r.Value
			if v == "" {
				v = "-"
			}
			fmt.Fprintf(w, "%d %d %d %s\n", r.Start.UnixNano(), r.End.UnixNano(), r.Status, v)
		}
	}
	s, err := loadgen.Run(ctx, o, record)
	json.NewEncoder(os.Stdout).Encode(s)
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "bgload:", err)
		os.Exit(1)
	}
}
