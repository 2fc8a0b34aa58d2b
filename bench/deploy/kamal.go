package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// The reference: how kamal-proxy brings a new version in, modelled on its
// source (internal/server: target.go, health_check.go) and run against the
// same app started the same way as the direct start. `kamal-proxy deploy`
// adds the new target and begins its health checks at once: one check when
// the target is added, then one every interval (1 s by default,
// DefaultHealthCheckInterval), each with a 5 s timeout, and the first 2xx
// makes the target healthy; the service then swaps to it and drains the
// old target. Kamal runs the new container before it calls the proxy and
// stops the old one after the proxy has switched.

// Kamal-proxy's defaults.
const (
	kamalInterval = time.Second
	kamalTimeout  = 5 * time.Second
)

// kamalRun is one deployment the way kamal-proxy does it.
type kamalRun struct {
	// Launch is from the first start to the last start returning.
	Launch time.Duration `json:"launch_ns"`
	// ToHealthy is from the last start to every target passing a check.
	ToHealthy time.Duration `json:"to_healthy_ns"`
	// Stop is stopping the instances it replaces (SIGTERM and wait, or
	// `docker stop`), after the switch.
	Stop time.Duration `json:"stop_ns"`
	// Checks counts the health checks made, failed ones included.
	Checks int `json:"checks"`
}

// LaunchToHealthy is from the first start to every target healthy.
func (r kamalRun) LaunchToHealthy() time.Duration { return r.Launch + r.ToHealthy }

// Total is the whole deployment: start, health, switch, stop the old.
func (r kamalRun) Total() time.Duration { return r.Launch + r.ToHealthy + r.Stop }

// kamal deploys the app on plat as kamal-proxy would: the instances are
// started at once, as in the direct start, each is checked as kamal-proxy checks a
// new target, and once all pass, the instances of the previous kamal run
// on that platform are stopped. The new ones stay up until the next.
func (e *benchEnv) kamal(ctx context.Context, plat string) (kamalRun, error) {
	first := time.Now()
	ins, err := e.startAll(ctx, plat)
	fail := func(err error) (kamalRun, error) {
		for _, in := range ins {
			in.stop()
		}
		return kamalRun{}, err
	}
	if err != nil {
		return fail(fmt.Errorf("kamal-proxy model: %w", err))
	}
	launched := time.Now()
	checks := make([]int, len(ins))
	errs := make([]error, len(ins))
	healthy := make([]time.Time, len(ins))
	var wg sync.WaitGroup
	for i, in := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			healthy[i], checks[i], errs[i] = kamalHealth(ctx, in.addr)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fail(fmt.Errorf("kamal-proxy model on %s: %w", plat, err))
	}
	r := kamalRun{Launch: launched.Sub(first)}
	for i := range ins {
		r.ToHealthy = max(r.ToHealthy, healthy[i].Sub(launched))
		r.Checks += checks[i]
	}
	// Switched: the old instances are stopped, gracefully, then removed
	// (Kamal removes old containers later, untimed here too).
	stopAt := time.Now()
	old := e.kamalLive[plat]
	for _, in := range old {
		in.term()
	}
	r.Stop = time.Since(stopAt)
	for _, in := range old {
		in.stop()
	}
	e.kamalLive[plat] = ins
	return r, nil
}

// kamalHealth checks addr's /healthz as kamal-proxy checks a target: at
// once, then every kamalInterval, until a 2xx, and says when that came and
// how many checks it took. It gives up after readyTimeout.
func kamalHealth(ctx context.Context, addr string) (time.Time, int, error) {
	c := &http.Client{}
	defer c.CloseIdleConnections()
	url := "http://" + addr + "/healthz"
	tick := time.NewTicker(kamalInterval)
	defer tick.Stop()
	deadline := time.Now().Add(readyTimeout)
	for n := 1; ; n++ {
		cctx, cancel := context.WithTimeout(ctx, kamalTimeout)
		req, err := http.NewRequestWithContext(cctx, http.MethodGet, url, nil)
		if err != nil {
			cancel()
			return time.Time{}, n, err
		}
		req.Header.Set("User-Agent", "kamal-proxy")
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
				cancel()
				return time.Now(), n, nil
			}
		}
		cancel()
		if time.Now().After(deadline) {
			return time.Time{}, n, fmt.Errorf("%s never passed within %s (last: %v)", url, readyTimeout, err)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, n, ctx.Err()
		case <-tick.C:
		}
	}
}

// stopKamal stops what the kamal-proxy model left running.
func (e *benchEnv) stopKamal() {
	for plat, ins := range e.kamalLive {
		for _, in := range ins {
			in.stop()
		}
		delete(e.kamalLive, plat)
	}
}
