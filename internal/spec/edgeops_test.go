package spec

import (
	"strings"
	"testing"
	"time"
)

func TestEdgeOpsRulesNameTheirPlace(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"router:\n  max_body: 10mb\n", "spec.yaml:5:13: router.max_body: bad size \"10mb\": want a whole number and a unit of B, KiB, MiB or GiB"},
		{"router:\n  max_body: 0B\n", "spec.yaml:5:13: router.max_body: \"0B\" is out of range"},
		{"router:\n  max_body: 2048GiB\n", "router.max_body: \"2048GiB\" is out of range"},
		{"router:\n  timeout: 5ms\n", "spec.yaml:5:12: router.timeout: 5ms is below the 10ms minimum"},
		{"router:\n  timeout: soon\n", "spec.yaml:5:12: router.timeout: bad duration \"soon\""},
		{"retire:\n  drain_spread: 2h\n", "spec.yaml:5:17: retire.drain_spread: 2h is longer than the 1h maximum"},
		{"router:\n  acces_log: true\n", "router.acces_log"},
	} {
		_, err := Parse([]byte("app: shop\nprocess:\n  command: [./shop]\n"+tc.yaml), "spec.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %q", tc.yaml, err, tc.want)
		}
	}
	s, err := Parse([]byte("app: shop\nprocess:\n  command: [./shop]\nrouter:\n  access_log: true\n  max_body: 10MiB\n  timeout: 30s\nretire:\n  drain_spread: 10s\n"), "spec.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Router.AccessLog || s.Router.MaxBodyBytes() != 10<<20 || s.Router.Timeout.D() != 30*time.Second || s.Retire.DrainSpread.D() != 10*time.Second {
		t.Errorf("parsed: %+v %+v", s.Router, s.Retire)
	}
	if s, err := Parse([]byte("app: shop\nprocess:\n  command: [./shop]\n"), "spec.yaml"); err != nil || s.Router.AccessLog || s.Router.MaxBodyBytes() != 0 || s.Router.Timeout != 0 || s.Retire.DrainSpread != 0 {
		t.Errorf("defaults: %+v %v", s, err)
	}
	for in, want := range map[string]int64{"1B": 1, "512KiB": 512 << 10, "2MB": 2e6, "1GiB": 1 << 30, "10 MiB": 10 << 20} {
		if n, err := parseBodySize(in); err != nil || n != want {
			t.Errorf("%s: %d %v", in, n, err)
		}
	}
}
