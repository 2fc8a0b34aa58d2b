package spec

import (
	"bytes"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Parse decodes data strictly, fills defaults and validates. filename is
// only used in problems. The error, if any, is an *Errors listing every
// problem found; a spec over MaxBytes or MaxNodes is refused before it is
// decoded, with an *Errors that wraps ErrTooLarge.
func Parse(data []byte, filename string) (*Spec, error) {
	if err := sizeError(int64(len(data)), filename); err != nil {
		return nil, err
	}
	s, probs, err := decode(data, filename)
	if err != nil {
		return nil, err
	}
	if s != nil {
		s.ApplyDefaults()
		// Rules are checked even after decoding problems, so that one run
		// shows everything; but a value that could not be decoded would
		// only be reported again as missing or zero: drop what overlaps.
		decoded := probs
		for _, p := range s.problems() {
			if !overlaps(p.Path, decoded) {
				probs = append(probs, p)
			}
		}
	}
	c := collector{probs: probs}
	if err := c.err(); err != nil {
		return nil, err
	}
	return s, nil
}

// overlaps reports whether path is, contains or sits under the path of one
// of probs.
func overlaps(path string, probs []Problem) bool {
	under := func(a, b string) bool {
		return a == b || strings.HasPrefix(a, b+".") || strings.HasPrefix(a, b+"[")
	}
	for _, p := range probs {
		if under(path, p.Path) || under(p.Path, path) {
			return true
		}
	}
	return false
}

// ParseFile reads and parses the spec at path; a file over MaxBytes is
// refused before it is read.
func ParseFile(path string) (*Spec, error) {
	data, err := ReadFile(nil, path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}

// Marshal returns the spec as YAML. For a parsed spec this is the effective
// spec: every default filled in and the preset expanded into steps (named in
// a comment). Parsing the result gives the same spec back.
func (s *Spec) Marshal() ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(s); err != nil {
		return nil, fmt.Errorf("encoding spec: %w", err)
	}
	if s.Strategy.expandedFrom != "" {
		_, strategy := mapEntry(&doc, "strategy")
		if steps, _ := mapEntry(strategy, "steps"); steps != nil {
			steps.HeadComment = "expanded from preset " + s.Strategy.expandedFrom
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("encoding spec: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding spec: %w", err)
	}
	return buf.Bytes(), nil
}

// mapEntry returns the key and value nodes of name in mapping n, or nils.
func mapEntry(n *yaml.Node, name string) (key, value *yaml.Node) {
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == name {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}
