package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as Go writes durations ("5m", "1h30m",
// "500ms"). Negative durations are refused when decoding.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d without the zero units time.Duration.String adds
// ("1h" rather than "1h0m0s").
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// parseDuration is time.ParseDuration with the rules of the spec: a unit is
// required (a bare "30" is ambiguous) and the value is not negative.
func parseDuration(s string) (Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: want a number with a unit, like 30s, 5m or 1h30m", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("bad duration %q: must not be negative", s)
	}
	return Duration(d), nil
}

// MarshalYAML writes d as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a duration string, for callers decoding with yaml
// directly rather than through Parse.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return fmt.Errorf("line %d: want a duration like 30s", n.Line)
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalJSON writes d as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("want a duration string like 30s")
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Pause is how long a step waits: a duration, or Indefinite (written `{}`),
// which waits until the deployment is promoted.
type Pause struct {
	Duration   Duration
	Indefinite bool
}

// MarshalYAML writes `{}` for an indefinite pause and a duration otherwise.
func (p Pause) MarshalYAML() (any, error) {
	if p.Indefinite {
		return map[string]any{}, nil
	}
	return p.Duration.String(), nil
}

// UnmarshalYAML reads `{}` or a duration.
func (p *Pause) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode && len(n.Content) == 0 {
		*p = Pause{Indefinite: true}
		return nil
	}
	var d Duration
	if err := d.UnmarshalYAML(n); err != nil {
		return err
	}
	*p = Pause{Duration: d}
	return nil
}

// MarshalJSON writes `{}` for an indefinite pause and a duration otherwise.
func (p Pause) MarshalJSON() ([]byte, error) {
	if p.Indefinite {
		return []byte("{}"), nil
	}
	return p.Duration.MarshalJSON()
}

// UnmarshalJSON reads `{}` or a duration string.
func (p *Pause) UnmarshalJSON(b []byte) error {
	if strings.TrimSpace(string(b)) == "{}" {
		*p = Pause{Indefinite: true}
		return nil
	}
	var d Duration
	if err := d.UnmarshalJSON(b); err != nil {
		return err
	}
	*p = Pause{Duration: d}
	return nil
}
