package cli

import (
	"strings"
	"testing"
	"time"

	"bluegreen/internal/api"
)

func TestGateUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"maintenance", "shop"}, `maintenance takes an app name and on or off (bluegreen maintenance shop on), got "shop"`},
		{[]string{"maintenance", "shop", "maybe"}, `got "shop maybe"`},
		{[]string{"maintenance", "shop", "off", "--message", "x"}, "--message and --retry-after go with on, not off"},
		{[]string{"pause"}, "pause takes one app name, got 0 arguments"},
		{[]string{"resume", "a", "b"}, "resume takes one app name, got 2 arguments"},
		{[]string{"pause", "shop", "--max-held", "many"}, `--max-held: "many" is not a number`},
	} {
		code, _, stderr := runCLI(t, tc.args...)
		if code != ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("bluegreen %v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, ExitUsage, tc.want)
		}
	}
}

func TestGateLine(t *testing.T) {
	since := time.Date(2026, 11, 22, 6, 40, 0, 0, time.Local)
	held := int64(12)
	if got := gateLine(&api.Gate{App: "shop", State: "paused", MaxWait: "30s", MaxHeld: 1000, Held: &held, By: "ci from 127.0.0.1", Since: &since}); got !=
		"PAUSED since 06:40:00 by ci from 127.0.0.1: 12 requests held now, at most 1000, each up to 30s; `bluegreen resume shop` releases them\n" {
		t.Errorf("paused: %q", got)
	}
	if got := gateLine(&api.Gate{App: "shop", State: "maintenance", Since: &since}); got !=
		"IN MAINTENANCE since 06:40:00: production requests get a 503 page; `bluegreen maintenance shop off` ends it\n" {
		t.Errorf("maintenance: %q", got)
	}
	if got := gateLine(nil); got != "" {
		t.Errorf("serving: %q", got)
	}
}
