package params

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
)

// Redacted is what a secure value prints as everywhere except Reveal.
const Redacted = "[redacted]"

// Value is a parameter's value. A secure one prints as Redacted through
// fmt (every verb), slog, JSON and text marshalling, so passing it to a log
// line or an event cannot leak it; only Reveal returns the plain text.
type Value struct {
	secure bool
	s      string
}

// StringValue wraps a plain value.
func StringValue(s string) Value { return Value{s: s} }

// SecureValue wraps a secret value.
func SecureValue(s string) Value { return Value{secure: true, s: s} }

// Secure reports whether the value is a secret.
func (v Value) Secure() bool { return v.secure }

// Reveal returns the plain text. Call it only where the value is used
// (launching an instance, an explicit "show" by an authorised caller).
func (v Value) Reveal() string { return v.s }

// String returns the value, or Redacted for a secure one.
func (v Value) String() string {
	if v.secure {
		return Redacted
	}
	return v.s
}

// GoString keeps %#v from printing the struct's fields.
func (v Value) GoString() string {
	if v.secure {
		return "params.SecureValue(" + fmt.Sprintf("%q", Redacted) + ")"
	}
	return fmt.Sprintf("params.StringValue(%q)", v.s)
}

// Format covers every verb (%v, %s, %q, %x, %+v, %#v…): without it, %x or
// %+v of a containing struct would reach the unexported field.
func (v Value) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, v.GoString())
		return
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), v.String())
}

// LogValue redacts secure values in slog output.
func (v Value) LogValue() slog.Value { return slog.StringValue(v.String()) }

// MarshalJSON redacts secure values in JSON (API answers, event fields).
func (v Value) MarshalJSON() ([]byte, error) { return json.Marshal(v.String()) }

// MarshalText redacts secure values wherever text encoding is used.
func (v Value) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// Env is the environment resolved from a revision's pins, keyed by
// variable name. Printing or logging it redacts secure values.
type Env map[string]Value

// Environ returns "NAME=value" pairs, sorted, revealing secure values: it is
// meant for exec.Cmd.Env and nothing else.
func (e Env) Environ() []string {
	out := make([]string, 0, len(e))
	for k, v := range e {
		out = append(out, k+"="+v.Reveal())
	}
	sort.Strings(out)
	return out
}
