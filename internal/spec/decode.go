package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// nodeBudget bounds the nodes visited while decoding, counting each alias
// expansion again, so that a small file of nested aliases cannot make the
// decoder walk millions of nodes. Real specs have a few hundred.
const nodeBudget = 20000

const budgetMessage = "the file has too many values"

// decoder walks a yaml.Node tree into Go values through reflection, so that
// it can go on after a problem and report all of them, and record where each
// key path sits for the problems found later by Validate.
type decoder struct {
	collector
	given  map[string]bool
	budget int
}

var (
	durationType = reflect.TypeFor[Duration]()
	pauseType    = reflect.TypeFor[Pause]()
)

// decode parses data into a Spec without defaults or cross-field rules, and
// returns the problems found, unsorted. The spec is nil when nothing could be
// decoded (not YAML, not a mapping); otherwise it holds whatever could be.
// A document over MaxNodes is refused whole, with an error that says only
// that.
func decode(data []byte, file string) (*Spec, []Problem, error) {
	d := &decoder{collector: collector{file: file, pos: map[string]pos{}}, given: map[string]bool{}, budget: nodeBudget}
	root, err := parseDocument(data)
	if err != nil {
		d.yamlError(err)
		return nil, d.probs, nil
	}
	if root == nil || isNull(root) {
		d.at(pos{}, "", "the file is empty; at least app and process.command are needed")
		return nil, d.probs, nil
	}
	if err := countNodes(root, file); err != nil {
		return nil, nil, err
	}
	s := &Spec{file: file, pos: d.pos, given: d.given}
	d.value(root, reflect.ValueOf(s).Elem(), "")
	switch {
	case d.budget <= 0:
		// Only the budget problem is worth reading; the rest is noise
		// from values that were never decoded.
		probs := slices.DeleteFunc(d.probs, func(p Problem) bool { return !strings.HasPrefix(p.Message, budgetMessage) })
		return nil, nil, &Errors{Problems: probs, tooLarge: true}
	case root.Kind != yaml.MappingNode && len(d.probs) > 0:
		return nil, d.probs, nil
	}
	return s, d.probs, nil
}

// parseDocument returns the root node of the only document in data, or nil
// for an empty file.
func parseDocument(data []byte) (root *yaml.Node, err error) {
	defer func() {
		// The YAML library is third-party code fed untrusted bytes; a panic
		// in it must become a problem report, not a crashed server.
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
	for {
		// Empty documents after the first (a trailing ---) are harmless.
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(next.Content) > 0 && !isNull(next.Content[0]) {
			return nil, fmt.Errorf("yaml: line %d: a spec is one YAML document; remove the second one", next.Content[0].Line)
		}
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns the YAML library's syntax errors into problems.
func (d *decoder) yamlError(err error) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		d.at(pos{line: line}, "", "bad YAML: %s", m[2])
		return
	}
	d.at(pos{}, "", "bad YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

// resolve follows aliases and charges the budget; nil means give up.
func (d *decoder) resolve(n *yaml.Node, path string) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil {
		return nil
	}
	d.budget--
	if d.budget == 0 {
		d.at(pos{n.Line, n.Column}, path, "%s (over %d, counting each use of an alias)", budgetMessage, nodeBudget)
	}
	if d.budget <= 0 {
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

// value decodes n into v, reporting what does not fit.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if n = d.resolve(n, path); n == nil {
		return
	}
	d.pos[path] = pos{n.Line, n.Column}
	if isNull(n) {
		return // an empty value leaves the default
	}
	d.given[path] = true
	switch v.Type() {
	case durationType:
		d.duration(n, v, path)
		return
	case pauseType:
		if n.Kind == yaml.MappingNode {
			if len(n.Content) != 0 {
				d.add(path, "want a duration, or {} to wait for promote; got a mapping with keys")
				return
			}
			v.Set(reflect.ValueOf(Pause{Indefinite: true}))
			return
		}
		d.duration(n, v.FieldByName("Duration"), path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.value(n, v.Elem(), path)
	case reflect.Struct:
		d.mapping(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.add(path, "want a list, got %s", describe(n))
			return
		}
		if len(n.Content) == 0 {
			return // nil, like a list left out, so that equal specs compare equal
		}
		v.Set(reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content)))
		for i, item := range n.Content {
			d.value(item, v.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		d.stringMap(n, v, path)
	case reflect.String:
		switch n.ShortTag() {
		case "!!str", "!!int", "!!float", "!!bool":
			if n.Kind == yaml.ScalarNode {
				v.SetString(n.Value)
				return
			}
		}
		d.add(path, "want a string, got %s", describe(n))
	case reflect.Int:
		var i int
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
			d.add(path, "want a whole number, got %s", describe(n))
			return
		}
		v.SetInt(int64(i))
	case reflect.Float64:
		var f float64
		tag := n.ShortTag()
		if n.Kind != yaml.ScalarNode || (tag != "!!int" && tag != "!!float") || n.Decode(&f) != nil {
			d.add(path, "want a number, got %s", describe(n))
			return
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			d.add(path, "want a finite number, got %s", n.Value)
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.add(path, "want true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	default:
		panic(fmt.Sprintf("spec: no decoder for %s", v.Type())) // a programming error in this package
	}
}

func (d *decoder) duration(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.add(path, "want a duration like 30s, 5m or 1h30m, got %s", describe(n))
		return
	}
	dur, err := parseDuration(n.Value)
	if err != nil {
		d.add(path, "%s", err)
		return
	}
	v.Set(reflect.ValueOf(dur).Convert(v.Type()))
}

// unsupportedSections are top-level keys reserved for platforms to come.
var unsupportedSections = map[string]bool{PlatformKubernetes: true}

// refusedKeys are keys of a section that are refused by name, with their
// reason, rather than as unknown: they are what people copy from other
// tools, and "unknown key" would not say that the feature is withheld.
var refusedKeys = map[string]map[string]string{
	"docker":      dockerRefused,
	"docker.auth": {"password": "the password is not written in the spec: store it as a secure param and name it in password_param"},
}

// mapping decodes a YAML mapping into the struct v by yaml tag.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.add(path, "want a mapping of keys, got %s", describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	// A service of a stack has the sections of the top level, under
	// services.NAME: the same keys are refused there.
	local, inService := serviceLocal(path)
	d.entries(n, path, func(k, val *yaml.Node, key, kpath string) {
		idx, known := fields.index[key]
		switch {
		case known:
			d.value(val, v.Field(idx), kpath)
		case path == "" && strings.HasPrefix(key, "x-"):
			// Extension keys, as in Compose files: a place for anchors.
		case (path == "" || inService && local == "") && unsupportedSections[key]:
			d.at(pos{k.Line, k.Column}, kpath, "platform %s is not supported yet; only %q and %q are", key, PlatformProcess, PlatformDocker)
		case refusedKeys[local][key] != "":
			d.at(pos{k.Line, k.Column}, kpath, "%s", refusedKeys[local][key])
		default:
			d.at(pos{k.Line, k.Column}, kpath, "unknown key%s", suggest(key, fields.names))
		}
	})
}

// entries visits each key of a mapping node with its value and path, once:
// keys that are not plain strings, and repeated keys, are reported instead.
func (d *decoder) entries(n *yaml.Node, path string, visit func(k, val *yaml.Node, key, kpath string)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key, ok := d.key(k, path)
		if !ok {
			continue
		}
		kpath := join(path, key)
		if line, dup := seen[key]; dup {
			d.at(pos{k.Line, k.Column}, kpath, "duplicate key (first at line %d)", line)
			continue
		}
		seen[key] = k.Line
		visit(k, val, key, kpath)
	}
}

// key returns a mapping key as a string, reporting keys that are not scalars.
func (d *decoder) key(k *yaml.Node, path string) (string, bool) {
	if k = d.resolve(k, path); k == nil {
		return "", false
	}
	if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!null" {
		d.at(pos{k.Line, k.Column}, path, "want a plain key, got %s", describe(k))
		return "", false
	}
	if k.ShortTag() == "!!merge" {
		d.at(pos{k.Line, k.Column}, path, "merge keys (<<) are not supported; repeat the keys or use an alias for the whole value")
		return "", false
	}
	return k.Value, true
}

func (d *decoder) stringMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.add(path, "want a mapping of names to values, got %s", describe(n))
		return
	}
	if len(n.Content) == 0 {
		return // nil, like a mapping left out
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	d.entries(n, path, func(_, val *yaml.Node, key, kpath string) {
		elem := reflect.New(v.Type().Elem()).Elem()
		d.value(val, elem, kpath)
		m.SetMapIndex(reflect.ValueOf(key), elem)
	})
	v.Set(m)
}

type structFields struct {
	index map[string]int
	names []string
}

// fieldsOf maps yaml key names to field indexes. Types are few and small, so
// this is recomputed rather than cached in global state.
func fieldsOf(t reflect.Type) structFields {
	f := structFields{index: map[string]int{}}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		f.index[name] = i
		f.names = append(f.names, name)
	}
	return f
}

// describe names what a node is, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing"
		case "!!str":
			return "the string " + quote(n.Value)
		case "!!int", "!!float":
			return "the number " + clip(n.Value)
		case "!!bool":
			return n.Value
		}
		return fmt.Sprintf("a value tagged %s", clip(n.Tag))
	}
	return "something else"
}

// quote quotes s, shortened so that a huge value does not flood the report.
func quote(s string) string { return strconv.Quote(clip(s)) }

func clip(s string) string {
	const limit = 60
	if len(s) <= limit {
		return s
	}
	cut := 0
	for i := range s { // cut on a rune boundary
		if i > limit {
			break
		}
		cut = i
	}
	return s[:cut] + "…"
}
