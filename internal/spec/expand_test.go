package spec

import (
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"PORT": "4001", "NAME": "shop", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	cases := []struct{ in, want, err string }{
		{"127.0.0.1:${PORT}", "127.0.0.1:4001", ""},
		{"${NAME}-${PORT}", "shop-4001", ""},
		{"plain", "plain", ""},
		{"x${EMPTY}y", "xy", ""},
		{"$$PORT costs $$5", "$PORT costs $5", ""},
		{"awk {print $1}", "awk {print $1}", ""},
		{"$PORT", "$PORT", ""},
		{"trailing $", "trailing $", ""},
		{"${MISSING}", "", "variable MISSING is not set"},
		{"${PORT", "", "unclosed ${"},
		{"${}", "", `bad variable name ""`},
		{"${A-B}", "", `bad variable name "A-B"`},
	}
	for _, tc := range cases {
		got, err := Expand(tc.in, lookup)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Expand(%q) error = %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("Expand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestProcessExpanded(t *testing.T) {
	s := mustParse(t, "app: shop\nprocess:\n  command: [./shop, --listen, \"127.0.0.1:${PORT}\"]\n  env: {GREETING: \"hi ${NAME}\", RAW: x}\n")
	lookup := func(k string) (string, bool) {
		v, ok := map[string]string{"PORT": "4001", "NAME": "bob"}[k]
		return v, ok
	}
	cmd, env, err := s.Process.Expanded(lookup)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cmd, " ") != "./shop --listen 127.0.0.1:4001" || env["GREETING"] != "hi bob" || env["RAW"] != "x" {
		t.Errorf("got %q %q", cmd, env)
	}
	if s.Process.Command[2] != "127.0.0.1:${PORT}" {
		t.Error("Expanded changed the spec")
	}
	_, _, err = s.Process.Expanded(func(string) (string, bool) { return "", false })
	if err == nil || !strings.Contains(err.Error(), "process.command[2]") {
		t.Errorf("unknown variable: err = %v", err)
	}
}
