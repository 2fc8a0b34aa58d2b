package testwait

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestForWaitsForTheCondition(t *testing.T) {
	var n atomic.Int32
	For(t, 10*time.Second, "three looks", func() bool { return n.Add(1) >= 3 })
	if n.Load() != 3 {
		t.Fatalf("looked %d times", n.Load())
	}
}

// recorder keeps a failure instead of ending the test; Fatalf stops the
// wait as the real one would.
type recorder struct {
	testing.TB
	failed string
}

type stopped struct{}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	panic(stopped{})
}

func TestForOrSaysWhyOnTimeout(t *testing.T) {
	r := &recorder{TB: t}
	func() {
		defer func() {
			if v := recover(); v != (stopped{}) {
				panic(v)
			}
		}()
		ForOr(r, 20*time.Millisecond, "nothing", func() bool { return false }, func() string { return "the log" })
	}()
	if !strings.Contains(r.failed, "timed out after 20ms waiting for nothing") || !strings.Contains(r.failed, "the log") {
		t.Fatalf("failure %q", r.failed)
	}
}
