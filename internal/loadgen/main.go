package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Main is the load generator's command line, shared by cmd/bgload and the
// hidden `bluegreen load` (which the quickstart runs as its own process):
// flags as bgload documents them, a JSON Summary on stdout, and with
// -records one line per request. It returns the exit code.
func Main(name string, args []string, stdout, stderr io.Writer) int {
	var o Options
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.URL, "url", "", "URL to load (required)")
	fs.StringVar(&o.Host, "host", "", "Host header")
	fs.IntVar(&o.Rate, "rate", 1000, "requests per second")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long to send")
	fs.IntVar(&o.MaxRequests, "max", 0, "stop after this many requests (default rate × duration)")
	fs.IntVar(&o.Concurrency, "c", 16, "requests in flight at most")
	fs.StringVar(&o.Header, "header", "", "response header to record per request")
	fs.BoolVar(&o.NewConns, "new-conns", false, "open a new connection for every request (no keep-alive)")
	records := fs.String("records", "", "file for one line per request")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var record func(Record)
	if *records != "" {
		f, err := os.Create(*records)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
		w := bufio.NewWriter(f)
		defer func() {
			w.Flush()
			f.Close()
		}()
		record = func(r Record) { writeRecord(w, r) }
	}
	s, err := Run(ctx, o, record)
	json.NewEncoder(stdout).Encode(s)
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

// A records line is "START END STATUS VALUE": Unix nanoseconds, the status
// (0 when no answer came) and the recorded header ("-" when empty).
func writeRecord(w io.Writer, r Record) {
	v := r.Value
	if v == "" {
		v = "-"
	}
	fmt.Fprintf(w, "%d %d %d %s\n", r.Start.UnixNano(), r.End.UnixNano(), r.Status, v)
}

// ReadRecords reads a records file written by Main.
func ReadRecords(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) != 4 {
			return nil, fmt.Errorf("%s:%d: want 4 fields, got %d", path, n, len(fields))
		}
		var nums [3]int64
		for i := range nums {
			v, err := strconv.ParseInt(fields[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: field %d: %w", path, n, i+1, err)
			}
			nums[i] = v
		}
		r := Record{Start: time.Unix(0, nums[0]), End: time.Unix(0, nums[1]), Status: int(nums[2]), Value: fields[3]}
		if r.Value == "-" {
			r.Value = ""
		}
		out = append(out, r)
	}
	return out, sc.Err()
}
