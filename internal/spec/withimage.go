package spec

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// WithImage returns the spec text raw with docker.image set to ref and
// everything else kept as written: keys in their order, comments, anchors
// and the rest of the docker section (only the layout may change, as the
// YAML is written out again). It is how a new revision is made from a live
// spec and another image. raw must parse and run on platform docker; file
// names raw in problems. The result is parsed before it is returned.
func WithImage(raw []byte, file, ref string) ([]byte, error) {
	s, err := Parse(raw, file)
	if err != nil {
		return nil, err
	}
	if s.IsStack() {
		return nil, fmt.Errorf("app %s is a stack of services (%s): --image sets the image of an app of one service; set services.NAME.docker.image in the spec and deploy the bundle", s.App, strings.Join(s.StackOrder(), ", "))
	}
	if s.Platform != PlatformDocker {
		return nil, fmt.Errorf("app %s runs on platform %s; --image needs platform: docker", s.App, s.Platform)
	}
	if msg := imageProblem(ref); msg != "" {
		return nil, fmt.Errorf("%s", msg)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil || len(doc.Content) != 1 {
		return nil, fmt.Errorf("%s: cannot edit the spec: %v", file, err)
	}
	root := doc.Content[0]
	section, copied := entryValue(root, "docker")
	image, _ := entryValue(section, "image")
	if image == nil {
		// Parse found docker.image, so this is not expected to happen.
		return nil, fmt.Errorf("%s: cannot find docker.image", file)
	}
	style := image.Style & (yaml.DoubleQuotedStyle | yaml.SingleQuotedStyle)
	if image.Kind != yaml.ScalarNode {
		style = 0
	}
	if copied || image.Kind != yaml.ScalarNode {
		// The old node belongs to an anchor, whose other uses must not
		// change: put a new one in its place.
		fresh := &yaml.Node{HeadComment: image.HeadComment, LineComment: image.LineComment, FootComment: image.FootComment}
		setEntry(section, "image", fresh)
		image = fresh
	}
	// Otherwise the scalar is changed in place, so that an anchor on it
	// stays defined.
	image.Kind, image.Tag, image.Value, image.Style, image.Content, image.Alias = yaml.ScalarNode, "!!str", ref, style, nil, nil

	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(indentOf(root))
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("%s: writing the spec: %w", file, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("%s: writing the spec: %w", file, err)
	}
	if _, err := Parse(buf.Bytes(), file); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// entryValue returns the value of key in mapping n, or nil. A value that
// is an alias is replaced by a copy of what it points at, so that editing
// it leaves the anchor alone; copied says so.
func entryValue(n *yaml.Node, key string) (v *yaml.Node, copied bool) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value != key {
			continue
		}
		v = n.Content[i+1]
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			cp := *v.Alias
			cp.Anchor, cp.Content = "", slices.Clone(v.Alias.Content)
			cp.LineComment = v.LineComment
			n.Content[i+1] = &cp
			return &cp, true
		}
		return v, false
	}
	return nil, false
}

// setEntry replaces the value of key in mapping n.
func setEntry(n *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content[i+1] = v
		}
	}
}

// indentOf guesses the indentation the file uses from its first block
// mapping under the top level, so that the rewritten file looks the same.
func indentOf(root *yaml.Node) int {
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if v.Kind == yaml.MappingNode && v.Style&yaml.FlowStyle == 0 && len(v.Content) > 0 && v.Content[0].Line > k.Line {
			if d := v.Content[0].Column - k.Column; d >= 2 && d <= 8 {
				return d
			}
		}
	}
	return 2
}
