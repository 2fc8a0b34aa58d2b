// Package testwait is how tests wait: on a condition, looked at on a short
// tick until it holds or a deadline passes, never for a fixed time.
package testwait

import (
	"testing"
	"time"
)

// tick is how often a condition is looked at.
const tick = 5 * time.Millisecond

// For waits until cond holds, failing the test after timeout with what it
// waited for.
func For(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	ForOr(t, timeout, what, cond, nil)
}

// ForOr is For that, when the wait fails, adds what explain says (an event
// log, a server's output) to the failure.
func ForOr(t testing.TB, timeout time.Duration, what string, cond func() bool, explain func() string) {
	t.Helper()
	if cond() {
		return
	}
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case <-ticker.C:
			if cond() {
				return
			}
		case <-deadline.C:
			if cond() {
				return
			}
			more := ""
			if explain != nil {
				more = "\n" + explain()
			}
			t.Fatalf("timed out after %s waiting for %s%s", timeout, what, more)
		}
	}
}
