package spec

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Expand replaces each ${NAME} in s with lookup(NAME). "$$" stands for a
// literal "$", and a "$" not followed by "{" or "$" is kept as it is, so
// arguments like awk's $1 pass through.
//
// A variable lookup does not know is an error rather than an empty string:
// "127.0.0.1:${PROT}" silently becoming "127.0.0.1:" would start the
// instance on a port nobody routes to.
func Expand(s string, lookup func(name string) (string, bool)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", fmt.Errorf("%s: unclosed ${", quote(s))
			}
			name := s[i+2 : i+2+end]
			if !envName.MatchString(name) && !serviceRef.MatchString(name) {
				return "", fmt.Errorf("%s: bad variable name %s in ${...}", quote(s), quote(name))
			}
			v, ok := lookup(name)
			if !ok {
				return "", fmt.Errorf("%s: variable %s is not set", quote(s), name)
			}
			b.WriteString(v)
			i += end + 2
		default:
			b.WriteByte('$')
		}
	}
	return b.String(), nil
}

// checkTemplate reports a malformed ${...} in s without expanding anything.
func checkTemplate(s string) error {
	_, err := Expand(s, func(string) (string, bool) { return "", true })
	return err
}

// Expanded returns the command and the env with ${NAME} expanded through
// lookup, which the platform backs with PORT, the spec's params and its own
// environment. Env values are expanded through lookup only, never through
// each other, so their order cannot matter.
func (p *Process) Expanded(lookup func(name string) (string, bool)) (command []string, env map[string]string, err error) {
	command = make([]string, len(p.Command))
	for i, arg := range p.Command {
		if command[i], err = Expand(arg, lookup); err != nil {
			return nil, nil, fmt.Errorf("process.command[%d]: %w", i, err)
		}
	}
	env = make(map[string]string, len(p.Env))
	for _, k := range slices.Sorted(maps.Keys(p.Env)) {
		if env[k], err = Expand(p.Env[k], lookup); err != nil {
			return nil, nil, fmt.Errorf("process.env.%s: %w", k, err)
		}
	}
	return command, env, nil
}
