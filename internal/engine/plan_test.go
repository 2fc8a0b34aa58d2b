package engine

import (
	"testing"
	"time"

	"bluegreen/internal/spec"
)

func steps(t *testing.T, preset string) []spec.Step {
	t.Helper()
	s, err := spec.ExpandPreset(preset)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func w(n int) *int { return &n }

func pause(d time.Duration) *spec.Pause { return &spec.Pause{Duration: spec.Duration(d)} }

func TestNextPlan(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	canary := []spec.Step{{Weight: w(10), Pause: pause(5 * time.Minute)}, {Weight: w(100)}}
	manual := []spec.Step{{Weight: w(20), Pause: &spec.Pause{Indefinite: true}}, {Weight: w(100)}}
	noPause := []spec.Step{{Weight: w(10)}, {Weight: w(50)}, {Weight: w(100)}}
	pauseOnly := []spec.Step{{Weight: w(30)}, {Pause: pause(time.Minute)}, {Weight: w(100)}}

	cases := []struct {
		name     string
		steps    []spec.Step
		p        Progress
		full     bool
		rules    bool
		now      time.Time
		want     Plan
		wantStep int
	}{
		{"all at once", steps(t, "AllAtOnce"), Progress{Since: t0}, false, false, t0,
			Plan{Weight: 100, Done: true}, 1},
		{"all at once with rules does not wait at 100", steps(t, "AllAtOnce"), Progress{Since: t0}, false, true, t0,
			Plan{Weight: 100, Done: true}, 1},
		{"canary pauses at 10", canary, Progress{Since: t0}, false, false, t0.Add(time.Minute),
			Plan{Weight: 10, Waiting: WaitPause, Until: t0.Add(5 * time.Minute)}, 0},
		{"canary pause over", canary, Progress{Since: t0}, false, false, t0.Add(5 * time.Minute),
			Plan{Weight: 100, Done: true}, 2},
		{"promote ends a timed pause", canary, Progress{Since: t0, Promoted: true}, false, false, t0.Add(time.Second),
			Plan{Weight: 100, Done: true}, 2},
		{"indefinite pause waits for promote", manual, Progress{Since: t0}, false, false, t0.Add(24 * time.Hour),
			Plan{Weight: 20, Waiting: WaitPromote}, 0},
		{"promote ends an indefinite pause", manual, Progress{Since: t0, Promoted: true}, false, false, t0,
			Plan{Weight: 100, Done: true}, 2},
		{"full goes to 100 from anywhere", manual, Progress{Since: t0}, true, false, t0,
			Plan{Weight: 100, Done: true}, 2},
		{"no pause, no rules: straight through", noPause, Progress{Since: t0}, false, false, t0,
			Plan{Weight: 100, Done: true}, 3},
		{"no pause with rules waits for a check", noPause, Progress{Since: t0}, false, true, t0,
			Plan{Weight: 10, Waiting: WaitChecks}, 0},
		{"a passed check moves one step", noPause, Progress{Since: t0, Checked: true}, false, true, t0,
			Plan{Weight: 50, Waiting: WaitChecks}, 1},
		{"a pause-only step keeps the weight before it", pauseOnly, Progress{Step: 1, Since: t0}, false, false, t0,
			Plan{Weight: 30, Waiting: WaitPause, Until: t0.Add(time.Minute)}, 1},
		{"linear catches up after a long stop", steps(t, "Linear10PercentEvery1Minute"), Progress{Since: t0}, false, false, t0.Add(time.Hour),
			// each step's pause starts when the step is reached (now), so
			// only the first one is over
			Plan{Weight: 20, Waiting: WaitPause, Until: t0.Add(time.Hour + time.Minute)}, 1},
		{"done stays done", canary, Progress{Step: 2, Since: t0}, false, true, t0,
			Plan{Weight: 100, Done: true}, 2},
		{"a timed pause over without a pass waits for checks", canary, Progress{Since: t0}, false, true, t0.Add(5 * time.Minute),
			Plan{Weight: 10, Waiting: WaitChecks}, 0},
		{"a timed pause over after a pass moves on", canary, Progress{Since: t0, Checked: true}, false, true, t0.Add(5 * time.Minute),
			Plan{Weight: 100, Done: true}, 2},
		{"a pass does not cut a timed pause short", canary, Progress{Since: t0, Checked: true}, false, true, t0.Add(time.Minute),
			Plan{Weight: 10, Waiting: WaitPause, Until: t0.Add(5 * time.Minute)}, 0},
		{"promote goes on whatever the checks say", canary, Progress{Since: t0, Promoted: true}, false, true, t0.Add(time.Second),
			Plan{Weight: 100, Done: true}, 2},
		{"a weight step before a pause at the same weight does not wait", pauseOnly, Progress{Since: t0}, false, true, t0,
			Plan{Weight: 30, Waiting: WaitPause, Until: t0.Add(time.Minute)}, 1},
		{"the pause before the weight grows waits for a pass", pauseOnly, Progress{Step: 1, Since: t0}, false, true, t0.Add(time.Hour),
			Plan{Weight: 30, Waiting: WaitChecks}, 1},
		{"a step at weight 0 has nothing to judge", []spec.Step{{Weight: w(0), Pause: pause(time.Minute)}, {Weight: w(100)}}, Progress{Since: t0}, false, true, t0.Add(time.Minute),
			Plan{Weight: 100, Done: true}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := NextPlan(c.steps, c.p, c.full, c.rules, c.now)
			if got.Step != c.wantStep || got.Weight != c.want.Weight || got.Done != c.want.Done ||
				got.Waiting != c.want.Waiting || !got.Until.Equal(c.want.Until) {
				t.Fatalf("NextPlan = step %d weight %d done %v waiting %q until %v; want step %d weight %d done %v waiting %q until %v",
					got.Step, got.Weight, got.Done, got.Waiting, got.Until,
					c.wantStep, c.want.Weight, c.want.Done, c.want.Waiting, c.want.Until)
			}
			if got.Step != c.p.Step && !got.Since.Equal(c.now) {
				t.Fatalf("a new step began at %v, want now (%v)", got.Since, c.now)
			}
			if got.Step != c.p.Step && (got.Promoted || got.Checked) {
				t.Fatalf("a new step inherited promote/checked: %+v", got.Progress)
			}
		})
	}
}

func TestValidateLookThinsOut(t *testing.T) {
	for _, c := range []struct{ since, want time.Duration }{
		{0, 5 * time.Millisecond},
		{20 * time.Millisecond, 5 * time.Millisecond},
		{100 * time.Millisecond, 25 * time.Millisecond},
		{200 * time.Millisecond, 50 * time.Millisecond},
		{time.Minute, 50 * time.Millisecond},
		{-time.Second, 5 * time.Millisecond}, // a clock stepped back
	} {
		if got := validateLook(c.since); got != c.want {
			t.Errorf("validateLook(%v) = %v, want %v", c.since, got, c.want)
		}
	}
}
