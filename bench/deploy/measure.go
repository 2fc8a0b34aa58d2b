package main

import (
	"context"
	"fmt"
	"time"

	"bluegreen/bench/cpuload"
)

// runResult is one run: one deployment per app, each after a direct start
// of the app on its platform.
type runResult struct {
	Direct  map[string]directRun `json:"direct"`  // by app ("docker-fast")
	Deploys map[string]deployRun `json:"deploys"` // by app
	// Kamal is the kamal-proxy model's deployment, by platform.
	Kamal map[string]kamalRun `json:"kamal"`
	// OtherLoad is the machine's busy share of all cores over a second
	// just before the run, while everything the benchmark started idles:
	// the work of others.
	OtherLoad float64 `json:"other_load"`
	// Load is the busy share during the run, the benchmark's own work
	// included.
	Load float64 `json:"load"`
}

// measure warms every app up with its first deployment (which has no blue
// to retire, so it is not recorded) and the kamal-proxy model with its
// first start, then runs: in each run, the kamal-proxy model deploys on
// every platform, then every app is started directly on its platform and
// then deployed (a new revision replacing the last). Each run begins one platform further along than
// the run before, so drift in the machine hits both platforms alike.
func measure(ctx context.Context, e *benchEnv) (*results, error) {
	res := &results{Options: e.o}
	var apps []*benchApp
	for _, h := range e.o.Health {
		for _, p := range e.o.Platforms {
			a, err := e.newApp(p, h)
			if err != nil {
				return nil, err
			}
			apps = append(apps, a)
		}
	}
	fmt.Println("== warming up: a direct start per platform, the first deployment of each app")
	for _, p := range e.o.Platforms {
		if _, err := e.direct(ctx, p); err != nil {
			return nil, err
		}
	}
	for _, a := range apps {
		if _, err := e.deploy(ctx, a); err != nil {
			return nil, err
		}
	}
	for _, p := range e.o.Platforms {
		if _, err := e.kamal(ctx, p); err != nil {
			return nil, err
		}
	}
	for i := range e.o.Runs {
		r := runResult{Direct: map[string]directRun{}, Deploys: map[string]deployRun{}, Kamal: map[string]kamalRun{}}
		r.OtherLoad = cpuload.Sample(ctx, time.Second)
		fmt.Printf("== run %d of %d (other load %.0f %%)\n", i+1, e.o.Runs, r.OtherLoad*100)
		start := cpuload.Read()
		for _, p := range rotate(e.o.Platforms, i) {
			k, err := e.kamal(ctx, p)
			if err != nil {
				return nil, err
			}
			r.Kamal[p] = k
			fmt.Printf("   %-15s kamal-proxy model: launch→healthy %s (%d checks), old stopped %s\n",
				p, ms(k.LaunchToHealthy()), k.Checks, ms(k.Stop))
		}
		for _, h := range e.o.Health {
			for _, p := range rotate(e.o.Platforms, i) {
				a := appOf(apps, p, h)
				direct, err := e.direct(ctx, p)
				if err != nil {
					return nil, err
				}
				d, err := e.deploy(ctx, a)
				if err != nil {
					return nil, err
				}
				r.Direct[a.name], r.Deploys[a.name] = direct, d
				fmt.Printf("   %-15s direct ready %s; upload %s; deployment %s: launch %s, launched→healthy %s, healthy→succeeded %s\n",
					a.name, ms(direct.Ready), ms(d.Upload), ms(d.Total), ms(d.Launch), ms(d.ToHealthy), ms(d.Finish))
			}
		}
		r.Load = cpuload.BusyShare(start, cpuload.Read())
		res.Runs = append(res.Runs, r)
	}
	return res, nil
}

func rotate(s []string, n int) []string {
	n %= len(s)
	return append(append([]string(nil), s[n:]...), s[:n]...)
}

func appOf(apps []*benchApp, plat, health string) *benchApp {
	for _, a := range apps {
		if a.platform == plat && a.health == health {
			return a
		}
	}
	return nil
}

// ms formats a duration in milliseconds with one decimal.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
