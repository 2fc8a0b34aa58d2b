//go:build linux

package router

import (
	"net/http"
	"strings"
	"testing"
)

func TestLoopCount(t *testing.T) {
	env := func(v string) func(string) string {
		return func(name string) string {
			if name == LoopsEnv {
				return v
			}
			return ""
		}
	}
	for _, c := range []struct {
		env   string
		procs int
		want  int
	}{
		{"", 1, 1}, {"", 2, 1}, {"", 3, 1}, {"", 4, 2}, {"", 16, 8},
		{"3", 2, 3}, {"1", 16, 1},
	} {
		if got, err := loopCount(env(c.env), c.procs); err != nil || got != c.want {
			t.Errorf("%s=%q with %d CPUs: %d loops, %v; want %d", LoopsEnv, c.env, c.procs, got, err, c.want)
		}
	}
	for _, bad := range []string{"0", "-1", "two", "2000", " 2"} {
		if _, err := loopCount(env(bad), 2); err == nil || !strings.Contains(err.Error(), LoopsEnv) {
			t.Errorf("%s=%q: err = %v, want one naming the variable", LoopsEnv, bad, err)
		}
	}
}

// A router started with BLUEGREEN_ROUTER_LOOPS runs that many loops and
// serves through them; with a value that is not a number of loops it says
// so and serves through the goroutine server.
func TestLoopsFromTheEnvironment(t *testing.T) {
	b := newBackend(t, "one")
	cfg := func() *Config {
		return &Config{Apps: map[string]*AppConfig{"shop": {
			Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{b.addr()}}},
		}}}
	}
	t.Setenv(LoopsEnv, "3")
	r := startRouter(t, cfg())
	if r.loops == nil || len(r.loops.loops) != 3 {
		t.Fatalf("with %s=3: loops %v (err %v), want 3", LoopsEnv, r.loops, r.loopsErr)
	}
	if _, got := get(t, &http.Client{}, prodURL(r)); got != "one" {
		t.Fatalf("through 3 loops: %q", got)
	}

	t.Setenv(LoopsEnv, "many")
	r = startRouter(t, cfg())
	if r.loops != nil || r.loopsErr == nil || !strings.Contains(r.loopsErr.Error(), LoopsEnv) {
		t.Fatalf("with %s=many: loops %v, err %v; want an error naming the variable", LoopsEnv, r.loops, r.loopsErr)
	}
	if _, got := get(t, &http.Client{}, prodURL(r)); got != "one" {
		t.Fatalf("through the goroutine server: %q", got)
	}
}
