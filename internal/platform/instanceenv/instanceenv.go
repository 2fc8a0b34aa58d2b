// Package instanceenv expands an instance's command line and environment the
// way every platform must (see platform.InstanceSpec.Command): ${NAME} is
// taken from PORT (the port the platform chose), then the spec's Vars, then
// the environment of the bluegreen server; an unset name is an error. Env
// values are expanded from those sources, never from each other.
package instanceenv

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	"bluegreen/internal/platform"
	"bluegreen/internal/spec"
)

// Expander expands the strings of one instance's spec.
type Expander struct {
	s      platform.InstanceSpec
	port   string
	getenv func(string) (string, bool)
}

// New returns the expander of s's strings for an instance on port; getenv
// reads the server's environment (os.LookupEnv).
func New(s platform.InstanceSpec, port int, getenv func(string) (string, bool)) *Expander {
	return &Expander{s: s, port: strconv.Itoa(port), getenv: getenv}
}

func (x *Expander) lookup(name string) (string, bool) {
	if name == "PORT" {
		return x.port, true
	}
	if v, ok := x.s.Vars[name]; ok {
		return v, true
	}
	return x.getenv(name)
}

// Args expands each of args; an error names what[i] ("command[0]: ...").
func (x *Expander) Args(what string, args []string) ([]string, error) {
	if args == nil {
		return nil, nil
	}
	out := make([]string, len(args))
	for i, arg := range args {
		v, err := spec.Expand(arg, x.lookup)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", what, i, err)
		}
		out[i] = v
	}
	return out, nil
}

// Environment returns base (a copy), then the spec's Vars as given, then its
// Env expanded, then PORT, each overriding the ones before.
func (x *Expander) Environment(base map[string]string) (map[string]string, error) {
	env := maps.Clone(base)
	if env == nil {
		env = map[string]string{}
	}
	maps.Copy(env, x.s.Vars)
	for _, k := range slices.Sorted(maps.Keys(x.s.Env)) {
		v, err := spec.Expand(x.s.Env[k], x.lookup)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", k, err)
		}
		env[k] = v
	}
	env["PORT"] = x.port
	return env, nil
}

// List returns env as "KEY=value" strings sorted by key.
func List(env map[string]string) []string {
	list := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		list = append(list, k+"="+env[k])
	}
	return list
}
