package appspec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxSize bounds the file: real appspecs are a few kilobytes.
const maxSize = 1 << 20

// maxProblems bounds a report: past this many, the rest are counted.
const maxProblems = 50

// nodeBudget bounds the nodes visited, counting each alias expansion again,
// so that a small file of nested aliases cannot make the reader walk
// millions of nodes.
const nodeBudget = 20000

// ParseFile reads and parses the appspec at name.
func ParseFile(name string) (*AppSpec, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading appspec: %w", err)
	}
	return Parse(data, name)
}

// Parse reads an appspec of the EC2/on-premises form strictly. filename is
// only used in problems. The error, if any, is an *Errors listing every
// problem found, each with its line, column and key path.
func Parse(data []byte, filename string) (*AppSpec, error) {
	d := &decoder{file: filename, budget: nodeBudget}
	a := d.parse(data)
	if len(d.probs) > 0 {
		slices.SortStableFunc(d.probs, func(x, y Problem) int {
			if x.Line != y.Line {
				return x.Line - y.Line
			}
			return x.Column - y.Column
		})
		if n := len(d.probs); n > maxProblems {
			last := d.probs[maxProblems-1]
			d.probs = append(d.probs[:maxProblems:maxProblems], Problem{File: last.File, Line: last.Line, Column: last.Column,
				Message: fmt.Sprintf("and %d more problems", n-maxProblems)})
		}
		return nil, &Errors{Problems: d.probs}
	}
	return a, nil
}

type decoder struct {
	file   string
	probs  []Problem
	budget int
}

func (d *decoder) add(n *yaml.Node, path, format string, args ...any) {
	p := Problem{File: d.file, Path: path, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Column = n.Line, n.Column
	}
	d.probs = append(d.probs, p)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (d *decoder) parse(data []byte) *AppSpec {
	if len(data) > maxSize {
		d.add(nil, "", "the file is %d bytes; an appspec is at most %d", len(data), maxSize)
		return nil
	}
	root, err := document(data)
	if err != nil {
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			d.add(&yaml.Node{Line: line}, "", "bad YAML: %s", m[2])
		} else {
			d.add(nil, "", "bad YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return nil
	}
	if root == nil {
		d.add(nil, "", "the file is empty; an appspec has at least version, os and hooks")
		return nil
	}
	a := &AppSpec{}
	ecs := false
	d.mapping(root, "", func(key string, k, v *yaml.Node) {
		switch key {
		case "version":
			a.Version = d.scalar(v, key)
		case "os":
			a.OS = d.scalar(v, key)
		case "files":
			d.list(v, key, func(i int, n *yaml.Node, p string) { a.Files = append(a.Files, d.file1(n, p)) })
		case "permissions":
			d.list(v, key, func(i int, n *yaml.Node, p string) { a.Permissions = append(a.Permissions, d.permission(n, p)) })
		case "hooks":
			a.Hooks = d.hooks(v)
		case "file_exists_behavior":
			a.FileExistsBehavior = d.scalar(v, key)
			if !slices.Contains([]string{"DISALLOW", "OVERWRITE", "RETAIN"}, a.FileExistsBehavior) {
				d.add(v, key, "must be DISALLOW, OVERWRITE or RETAIN, got %q", a.FileExistsBehavior)
			}
		case "resources", "Resources", "Hooks":
			if ecs {
				return // said once is enough
			}
			ecs = true
			d.add(k, key, "this is the ECS or Lambda form of an appspec, whose hooks name Lambda functions; only the EC2/on-premises form (files, permissions, hooks with scripts) converts")
		default:
			d.add(k, key, "unknown key%s", suggest(key, []string{"version", "os", "files", "permissions", "hooks", "file_exists_behavior"}))
		}
	})
	switch {
	case root.Kind != yaml.MappingNode:
	case a.Version == "" && !d.has("version"):
		d.add(nil, "version", "is required: CodeDeploy's only version, 0.0")
	case a.Version != "0.0" && !d.has("version"):
		d.add(d.node(root, "version"), "version", "must be 0.0, got %q", a.Version)
	}
	if root.Kind == yaml.MappingNode && !d.has("os") {
		switch a.OS {
		case "linux":
		case "":
			if d.node(root, "resources") == nil && d.node(root, "Resources") == nil {
				d.add(nil, "os", "is required: linux")
			}
		case "windows":
			d.add(d.node(root, "os"), "os", "windows: bluegreen runs apps on Linux; only os: linux converts")
		default:
			d.add(d.node(root, "os"), "os", "must be linux or windows, got %q", a.OS)
		}
	}
	return a
}

// has says whether a problem was already found at path.
func (d *decoder) has(path string) bool {
	for _, p := range d.probs {
		if p.Path == path {
			return true
		}
	}
	return false
}

// node returns the value of key in mapping n, or nil.
func (d *decoder) node(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// document returns the root node of the only document in data, or nil for
// an empty file.
func document(data []byte) (root *yaml.Node, err error) {
	defer func() {
		// The YAML library is third-party code fed untrusted bytes; a
		// panic in it is a problem report, not a crash.
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("yaml: cannot parse this file (%v)", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, err
		}
		if len(next.Content) > 0 {
			return nil, fmt.Errorf("yaml: line %d: an appspec is one YAML document; remove the second one", next.Content[0].Line)
		}
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil, nil
	}
	return doc.Content[0], nil
}

// resolve follows aliases and charges the budget; nil means give up.
func (d *decoder) resolve(n *yaml.Node, path string) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || d.budget <= 0 {
		return nil
	}
	d.budget--
	if d.budget == 0 {
		d.add(n, path, "the file has too many values (over %d, counting each use of an alias)", nodeBudget)
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// kind names what a node holds, for problems.
func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if isNull(n) {
		return "nothing"
	}
	return fmt.Sprintf("%q", n.Value)
}

// mapping calls f for each key of mapping n, in order; a key given twice
// is a problem.
func (d *decoder) mapping(n *yaml.Node, path string, f func(key string, k, v *yaml.Node)) {
	if n = d.resolve(n, path); n == nil {
		return
	}
	if n.Kind != yaml.MappingNode {
		where := path
		if where == "" {
			d.add(n, "", "want a mapping of keys (version, os, files, permissions, hooks), got %s", kind(n))
			return
		}
		d.add(n, where, "want a mapping, got %s", kind(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.add(k, path, "a key must be a plain word")
			continue
		}
		if seen[k.Value] {
			d.add(k, join(path, k.Value), "given twice")
			continue
		}
		seen[k.Value] = true
		f(k.Value, k, v)
	}
}

// list calls f for each item of list n; an empty value is an empty list.
func (d *decoder) list(n *yaml.Node, path string, f func(i int, item *yaml.Node, itemPath string)) {
	if n = d.resolve(n, path); n == nil || isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.add(n, path, "want a list, got %s", kind(n))
		return
	}
	for i, item := range n.Content {
		f(i, item, fmt.Sprintf("%s[%d]", path, i))
	}
}

// scalar returns a scalar's text as written: `mode: 755` is "755".
func (d *decoder) scalar(n *yaml.Node, path string) string {
	if n = d.resolve(n, path); n == nil || isNull(n) {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		d.add(n, path, "want a single value, got %s", kind(n))
		return ""
	}
	return n.Value
}

// strings reads a list of scalars; a single scalar counts as a list of one.
func (d *decoder) strings(n *yaml.Node, path string) []string {
	if r := d.resolve(n, path); r != nil && r.Kind == yaml.ScalarNode && !isNull(r) {
		return []string{r.Value}
	}
	var out []string
	d.list(n, path, func(_ int, item *yaml.Node, p string) { out = append(out, d.scalar(item, p)) })
	return out
}

func (d *decoder) file1(n *yaml.Node, path string) File {
	f := File{Line: n.Line}
	d.mapping(n, path, func(key string, k, v *yaml.Node) {
		switch key {
		case "source":
			f.Source = d.scalar(v, join(path, key))
		case "destination":
			f.Destination = d.scalar(v, join(path, key))
		default:
			d.add(k, join(path, key), "unknown key%s", suggest(key, []string{"source", "destination"}))
		}
	})
	if n.Kind == yaml.MappingNode {
		if f.Source == "" {
			d.add(n, join(path, "source"), "is required: a path in the bundle, like / or config/app.conf")
		}
		if f.Destination == "" {
			d.add(n, join(path, "destination"), "is required: where CodeDeploy copies source, like /var/www/app")
		}
	}
	return f
}

func (d *decoder) permission(n *yaml.Node, path string) Permission {
	p := Permission{Line: n.Line}
	keys := []string{"object", "pattern", "except", "owner", "group", "mode", "acls", "context", "type"}
	d.mapping(n, path, func(key string, k, v *yaml.Node) {
		kp := join(path, key)
		switch key {
		case "object":
			p.Object = d.scalar(v, kp)
		case "pattern":
			p.Pattern = d.scalar(v, kp)
		case "except":
			p.Except = d.strings(v, kp)
		case "owner":
			p.Owner = d.scalar(v, kp)
		case "group":
			p.Group = d.scalar(v, kp)
		case "mode":
			p.Mode = d.scalar(v, kp)
		case "acls":
			p.ACLs = d.strings(v, kp)
		case "context":
			p.Context = &Context{}
			d.mapping(v, kp, func(ck string, k2, v2 *yaml.Node) {
				switch ck {
				case "user":
					p.Context.User = d.scalar(v2, join(kp, ck))
				case "type":
					p.Context.Type = d.scalar(v2, join(kp, ck))
				case "range":
					p.Context.Range = d.scalar(v2, join(kp, ck))
				default:
					d.add(k2, join(kp, ck), "unknown key%s", suggest(ck, []string{"user", "type", "range"}))
				}
			})
		case "type":
			p.Type = d.strings(v, kp)
			for _, t := range p.Type {
				if t != "file" && t != "directory" {
					d.add(v, kp, "must be file or directory, got %q", t)
				}
			}
		default:
			d.add(k, kp, "unknown key%s", suggest(key, keys))
		}
	})
	if n.Kind == yaml.MappingNode && p.Object == "" {
		d.add(n, join(path, "object"), "is required: the path on the instance the entry applies to")
	}
	return p
}

func (d *decoder) hooks(n *yaml.Node) []Event {
	var out []Event
	d.mapping(n, "hooks", func(name string, k, v *yaml.Node) {
		p := join("hooks", name)
		info, known := events[name]
		switch {
		case !known:
			d.add(k, p, "unknown lifecycle event%s; scripts run at %s", suggest(name, scriptEvents), strings.Join(scriptEvents, ", "))
			return
		case info.Hook == "":
			d.add(k, p, "CodeDeploy runs this step itself: it takes no scripts")
			return
		}
		ev := Event{Name: name, Line: k.Line}
		d.list(v, p, func(i int, item *yaml.Node, ip string) {
			if s, ok := d.script(item, ip); ok {
				ev.Scripts = append(ev.Scripts, s)
			}
		})
		out = append(out, ev)
	})
	return out
}

// safeLocation is what a location may hold: bluegreen runs a hook as a
// shell line, so a path with spaces or shell characters would not survive.
var safeLocation = regexp.MustCompile(`^[A-Za-z0-9._/+@-]+$`)

func (d *decoder) script(n *yaml.Node, path string) (Script, bool) {
	if r := d.resolve(n, path); r == nil || r.Kind != yaml.MappingNode {
		if r != nil {
			d.add(r, path, "want a script, like { location: scripts/start.sh, timeout: 300 }, got %s", kind(r))
		}
		return Script{}, false
	}
	s := Script{Line: n.Line, Column: n.Column}
	before := len(d.probs)
	d.mapping(n, path, func(key string, k, v *yaml.Node) {
		kp := join(path, key)
		switch key {
		case "location":
			s.Location = d.scalar(v, kp)
			clean := path0(s.Location)
			switch {
			case s.Location == "":
			case clean == ".." || strings.HasPrefix(clean, "../"):
				d.add(v, kp, "%q points outside the bundle", s.Location)
			case !safeLocation.MatchString(s.Location):
				d.add(v, kp, "%q: bluegreen runs a hook as a shell line; rename the script to letters, digits and . _ - + @ /", s.Location)
			}
		case "timeout":
			raw := d.scalar(v, kp)
			t, err := strconv.Atoi(raw)
			switch {
			case raw == "":
			case err != nil:
				d.add(v, kp, "want a whole number of seconds, got %q", raw)
			case t < 1 || t > MaxTimeout:
				d.add(v, kp, "must be between 1 and %d seconds, got %d", MaxTimeout, t)
			default:
				s.Timeout = t
			}
		case "runas":
			s.Runas = d.scalar(v, kp)
		default:
			d.add(k, kp, "unknown key%s", suggest(key, []string{"location", "timeout", "runas"}))
		}
	})
	if s.Location == "" && !d.has(join(path, "location")) {
		d.add(n, join(path, "location"), "is required: the script's path in the bundle, like scripts/start.sh")
	}
	return s, len(d.probs) == before
}

// path0 is a location as a clean path relative to the bundle's root:
// CodeDeploy's agent joins it to the bundle's directory, so a leading /
// means the same as none.
func path0(location string) string {
	return path.Clean(strings.TrimLeft(location, "/"))
}

// suggest returns ` (did you mean "x"?)` for the closest of choices, or "".
func suggest(got string, choices []string) string {
	norm := func(s string) string { return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(s)) }
	best, bestDist := "", 1<<30
	for _, c := range choices {
		if norm(c) == norm(got) {
			return fmt.Sprintf(" (did you mean %q?)", c)
		}
		if dist := editDistance(norm(got), norm(c)); dist < bestDist {
			best, bestDist = c, dist
		}
	}
	if best != "" && bestDist <= max(1, len(best)/3) {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
