package spec

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Workload is what the engine reads of how an app runs, whatever its
// platform: the facts every platform section has, taken from the section
// of the spec's platform.
type Workload struct {
	// Instances is the number of instances of a fleet.
	Instances int
	// Env is the section's env, not yet expanded.
	Env map[string]string
	// Command is the section's command, not yet expanded: the argv of a
	// process, or what replaces an image's CMD (nil keeps the image's).
	Command     []string
	StopSignal  string
	StopTimeout Duration
}

// Workload returns the platform-neutral facts of the spec's platform
// section; the zero Workload when that section is missing (as in a stack,
// whose services each have their own: see Members).
func (s *Spec) Workload() Workload { return s.top().workload() }

// workload is the platform-neutral view of the place's run section.
func (p place) workload() Workload {
	r := p.run()
	if r.section == "" {
		return Workload{}
	}
	return Workload{Instances: *r.instances, Env: r.env, Command: r.command, StopSignal: *r.stopSignal, StopTimeout: *r.stopTimeout}
}

// place is where a run section sits: the top level of the spec, or a
// service of a stack. at prefixes the key paths of its problems.
type place struct {
	at       string // "" or "services.NAME."
	platform string
	process  *Process
	docker   *Docker
}

// top is the spec's own run section, the only one of an app of one
// service.
func (s *Spec) top() place { return place{"", s.Platform, s.Process, s.Docker} }

// places are the run sections of the spec: its own, or each service's.
func (s *Spec) places() []place {
	if !s.IsStack() {
		return []place{s.top()}
	}
	var out []place
	for _, name := range slices.Sorted(maps.Keys(s.Services)) {
		if sv := s.Services[name]; sv != nil {
			out = append(out, sv.place(name))
		}
	}
	return out
}

// run points at the settings that the process and docker sections share,
// so that one piece of code fills their defaults and checks them.
type run struct {
	section     string // the key path of the section, "" when there is none
	command     []string
	instances   *int
	env         map[string]string
	stopSignal  *string
	stopTimeout *Duration
}

// run returns the shared settings of the section of the place's platform
// (the default platform when none is set yet).
func (p place) run() run {
	platform := p.platform
	if platform == "" {
		platform = DefaultPlatform
	}
	switch {
	case platform == PlatformProcess && p.process != nil:
		x := p.process
		return run{p.at + PlatformProcess, x.Command, &x.Instances, x.Env, &x.StopSignal, &x.StopTimeout}
	case platform == PlatformDocker && p.docker != nil:
		d := p.docker
		return run{p.at + PlatformDocker, d.Command, &d.Instances, d.Env, &d.StopSignal, &d.StopTimeout}
	}
	return run{}
}

// validate checks instances, env, stop_signal and stop_timeout.
func (r run) validate(c *collector) {
	if r.section == "" {
		return
	}
	at := func(key string) string { return r.section + "." + key }
	if *r.instances < 1 || *r.instances > MaxInstances {
		c.add(at("instances"), "must be between 1 and %d, got %d", MaxInstances, *r.instances)
	}
	for _, k := range slices.Sorted(maps.Keys(r.env)) {
		kp := at("env." + k)
		if msg := envProblem(k); msg != "" {
			c.add(kp, "%s", msg)
		}
		if err := checkTemplate(r.env[k]); err != nil {
			c.add(kp, "%s", err)
		}
	}
	switch sig := *r.stopSignal; {
	case sig == "SIGKILL":
		c.add(at("stop_signal"), "SIGKILL cannot be caught; bluegreen sends it itself after stop_timeout")
	case !slices.Contains(StopSignals, sig):
		hint := suggest(sig, StopSignals)
		if full := "SIG" + strings.ToUpper(sig); slices.Contains(StopSignals, full) {
			hint = fmt.Sprintf(" (did you mean %q?)", full)
		}
		c.add(at("stop_signal"), "bad signal name %s%s; want one of %s", quote(sig), hint, strings.Join(StopSignals, ", "))
	}
	positive(c, at("stop_timeout"), *r.stopTimeout, false)
}

// argv checks the ${NAME} templates of a command-like list at path.
func argv(c *collector, path string, args []string, env map[string]string) {
	for i, arg := range args {
		if err := checkTemplate(arg); err != nil {
			c.add(fmt.Sprintf("%s[%d]", path, i), "%s", err)
		} else if name := shellStyleVar(arg, env); name != "" {
			c.add(fmt.Sprintf("%s[%d]", path, i), "%s is not expanded: the command is not run by a shell; write ${%s} (or $$%s for a literal $)", quote("$"+name), name, name)
		}
	}
}
