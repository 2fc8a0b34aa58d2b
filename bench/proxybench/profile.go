package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// profileRouter takes a CPU profile of the bluegreen router from its admin
// listener (/debug/pprof/profile) during one extra, unrecorded wrk run per
// workload and connection count. It runs after the measured rounds, so the profiler's own
// cost never enters the tables.
func (b *bench) profileRouter(ctx context.Context) error {
	var c *contender
	for _, a := range b.alive() {
		if a.name == "bluegreen" {
			c = a
		}
	}
	if c == nil {
		return nil
	}
	secs := b.opts.seconds
	client := &http.Client{Timeout: time.Duration(secs+20) * time.Second}
	fmt.Println("\nprofiling the bluegreen router (extra runs, not recorded)")
	for _, w := range b.opts.workloads {
		for _, conns := range b.opts.conns {
			name := fmt.Sprintf("bluegreen-c%d.pprof", conns)
			if w != workloadGet {
				name = fmt.Sprintf("bluegreen-%s-c%d.pprof", w, conns)
			}
			path := filepath.Join(b.opts.out, name)
			url := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", b.ports["bg-admin"], secs)
			done := make(chan error, 1)
			go func() { done <- fetchTo(ctx, client, url, path) }()
			_, _, werr := runWrk(ctx, b.opts.threads, conns, secs, c.url, b.scripts[w])
			err := <-done
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if werr != nil || err != nil {
				fmt.Printf("  %s, %d connections: no profile (wrk: %v, profile: %v)\n", w, conns, werr, err)
				continue
			}
			fmt.Printf("  %s, %d connections: go tool pprof -top %s %s\n", w, conns, b.opts.bluegreen, path)
		}
	}
	return nil
}

func fetchTo(ctx context.Context, client *http.Client, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
