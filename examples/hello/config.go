package main

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// config is everything hello reads from its environment.
//
// Identity:
//
//	VERSION      the version it reports; when unset, the first line of a
//	             VERSION file in the working directory; otherwise "dev".
//	PORT         port to listen on when -listen is not given (default 9001).
//	HOST         address to listen on when -listen is not given (default
//	             127.0.0.1).
//	BG_INSTANCE  instance name, sent back as header X-Instance when set.
//	BG_FLEET     the slot the instance runs in (blue or green, which is
//	             not its role: see docs/engine.md), sent back as header
//	             X-Fleet when set.
//
//	HELLO_HEALTH_PATH=/health    where health is answered (default /healthz);
//	                             every other path that begins with /health
//	                             answers 404, as an app that moved its check.
//
// Failure knobs (unset or empty means off):
//
//	HELLO_FAIL_HEALTH=1          /healthz always answers 503.
//	HELLO_FAIL_HEALTH_AFTER=5s   /healthz answers 200 until that long after
//	                             listening began, then 503 from then on.
//	HELLO_ERROR_RATE=0.3         that share (0 to 1) of requests to / and /slow
//	                             answer 500. Deterministic: the n-th such
//	                             request (counted from 1, across both paths)
//	                             fails when floor(n*rate) > floor((n-1)*rate),
//	                             so any run of k requests holds floor(k*rate)
//	                             or one more failures; the rate is rounded to
//	                             millionths. With 0.3 it is requests 4, 7, 10,
//	                             14, 17, 20, ... : 30 of every 100.
//	HELLO_LATENCY=200ms          every request to / waits that long first.
//	HELLO_START_DELAY=3s         wait that long before listening.
//	HELLO_EXIT_AFTER=5s          exit with status 1 that long after listening
//	                             began, dropping every connection.
//	HELLO_IGNORE_SIGTERM=1       log SIGTERM and carry on (SIGINT still stops).
//	HELLO_SHUTDOWN_TIMEOUT=30s   how long a graceful stop waits for requests
//	                             in flight (default 30s).
//
// Booleans take 1/0, true/false, t/f; durations take Go syntax (250ms, 3s,
// 1m). A value that does not parse makes hello exit with status 2 and name
// the variable.
type config struct {
	version, instance, fleet string
	healthPath               string

	failHealth      bool
	failHealthAfter time.Duration // < 0: off
	errorPPM        int64         // error rate in millionths; 0: off
	latency         time.Duration
	startDelay      time.Duration
	exitAfter       time.Duration // < 0: off
	ignoreSIGTERM   bool
	shutdownTimeout time.Duration

	knobs []string // the failure knobs that are set, for the startup line
}

// loadConfig reads the environment through getenv.
func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		version:  strings.TrimSpace(getenv("VERSION")),
		instance: getenv("BG_INSTANCE"),
		fleet:    getenv("BG_FLEET"),
	}
	if c.version == "" {
		// A VERSION file in the working directory travels with the bundle.
		if b, err := os.ReadFile("VERSION"); err == nil {
			c.version, _, _ = strings.Cut(strings.TrimSpace(string(b)), "\n")
			c.version = strings.TrimSpace(c.version)
		}
	}
	if c.version == "" {
		c.version = "dev"
	}

	var err error
	// set reports whether the knob is set, and remembers it for the startup line.
	set := func(name string) (string, bool) {
		v := strings.TrimSpace(getenv(name))
		if v != "" && err == nil {
			c.knobs = append(c.knobs, name+"="+v)
		}
		return v, v != "" && err == nil
	}
	boolean := func(name string) bool {
		v, ok := set(name)
		if !ok {
			return false
		}
		b, perr := strconv.ParseBool(v)
		if perr != nil {
			err = fmt.Errorf("%s=%q: want 1 or 0 (true or false)", name, v)
		}
		return b
	}
	duration := func(name string, off time.Duration) time.Duration {
		v, ok := set(name)
		if !ok {
			return off
		}
		d, perr := time.ParseDuration(v)
		if perr != nil || d < 0 {
			err = fmt.Errorf("%s=%q: want a duration of 0 or more, such as 500ms or 5s", name, v)
		}
		return d
	}

	c.healthPath = "/healthz"
	if v, ok := set("HELLO_HEALTH_PATH"); ok {
		if !strings.HasPrefix(v, "/health") {
			err = fmt.Errorf("HELLO_HEALTH_PATH=%q: want a path that begins with /health", v)
		}
		c.healthPath = v
	}
	c.failHealth = boolean("HELLO_FAIL_HEALTH")
	c.failHealthAfter = duration("HELLO_FAIL_HEALTH_AFTER", -1)
	if v, ok := set("HELLO_ERROR_RATE"); ok {
		r, perr := strconv.ParseFloat(v, 64)
		if perr != nil || math.IsNaN(r) || r < 0 || r > 1 {
			err = fmt.Errorf("HELLO_ERROR_RATE=%q: want a number from 0 to 1, such as 0.3", v)
		}
		c.errorPPM = int64(math.Round(r * 1e6))
	}
	c.latency = duration("HELLO_LATENCY", 0)
	c.startDelay = duration("HELLO_START_DELAY", 0)
	c.exitAfter = duration("HELLO_EXIT_AFTER", -1)
	c.ignoreSIGTERM = boolean("HELLO_IGNORE_SIGTERM")
	c.shutdownTimeout = duration("HELLO_SHUTDOWN_TIMEOUT", 30*time.Second)
	return c, err
}
