package spec

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestDocsNameEveryKey keeps docs/spec.md in step with the types: every key
// of the spec appears in it.
func TestDocsNameEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../../docs/spec.md")
	if err != nil {
		t.Fatal(err)
	}
	var walk func(reflect.Type, string)
	walk = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ == durationType || typ == pauseType {
			return
		}
		f := fieldsOf(typ)
		for _, name := range f.names {
			if !strings.Contains(string(doc), "`"+name+"`") {
				t.Errorf("docs/spec.md does not describe %s", join(path, name))
			}
			walk(typ.Field(f.index[name]).Type, join(path, name))
		}
	}
	walk(reflect.TypeFor[Spec](), "")
	for _, p := range Presets {
		if !strings.Contains(string(doc), "`"+p+"`") {
			t.Errorf("docs/spec.md does not list preset %s", p)
		}
	}
}

// TestDocsExampleParses keeps the example of docs/spec.md valid.
func TestDocsExampleParses(t *testing.T) {
	doc, err := os.ReadFile("../../docs/spec.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "## Example\n\n```yaml\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/spec.md has no yaml block under ## Example")
	}
	if _, err := Parse([]byte(example), "docs/spec.md#example"); err != nil {
		t.Fatal(err)
	}
}

// TestDocsSpecsParse keeps every whole spec shown in docs/spec.md (a yaml
// block starting with app:) valid.
func TestDocsSpecsParse(t *testing.T) {
	doc, err := os.ReadFile("../../docs/spec.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(doc), "```yaml\n")[1:]
	n := 0
	for i, b := range blocks {
		block, _, _ := strings.Cut(b, "```")
		if !strings.HasPrefix(block, "app:") {
			continue
		}
		n++
		if _, err := Parse([]byte(block), fmt.Sprintf("docs/spec.md#block%d", i+1)); err != nil {
			t.Errorf("%v\n%s", err, block)
		}
	}
	if n < 4 {
		t.Errorf("found %d specs in docs/spec.md, want at least 4 (example, docker, minimal, effective)", n)
	}
}
