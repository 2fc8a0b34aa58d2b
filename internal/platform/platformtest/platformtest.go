// Package platformtest is the conformance suite every platform.Platform
// must pass. It runs a small web app (./testapp) on the platform and checks
// what the engine relies on: instances answer on their Address, the
// environment reaches them, Launch is idempotent, List tells running from
// exited, Stop is graceful then forced, Logs tails and follows, and (where the
// platform supports it) a new Platform value adopts the instances of the last.
package platformtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"bluegreen/internal/platform"
)

// Config describes the platform under test.
type Config struct {
	// New opens the platform on stateDir. The suite calls it again with the
	// same directory to check adoption, and closes what it returns if it is
	// an io.Closer.
	New func(t *testing.T, stateDir string) platform.Platform
	// App returns the fields of an InstanceSpec that run the test app (see
	// TestApp) on this platform: Dir, WorkDir, Command, and any Env it needs.
	App func(t *testing.T) platform.InstanceSpec
	// Adopts says that a new Platform value on the same state directory
	// finds the instances the last one launched still running.
	Adopts bool
	// SeparateStreams says that stdout and stderr reach the platform
	// through two pipes (a container's), so Logs keeps the order of the
	// lines within each stream but not across them.
	SeparateStreams bool
	// OnlySIGTERM says that the platform stops instances with SIGTERM and
	// no other signal (a pod's), so Launch refuses another stop signal
	// with an error naming it.
	OnlySIGTERM bool
	// KillLatency is how much later than the grace period the platform
	// may kill an instance that ignores its stop signal, beyond the
	// suite's own margin (a kubelet kills no sooner than 2 s after SIGTERM
	// and reports the end at its own pace).
	KillLatency time.Duration
}

var build struct {
	once sync.Once
	dir  string
	err  error
}

// TestApp builds ./testapp once per test binary, as a static binary (it
// runs alone in an image FROM scratch too), and returns the path of the
// binary. RemoveTestApp deletes it; call it from TestMain after m.Run.
func TestApp(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "bluegreen-testapp-")
		if build.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(build.dir, "testapp"),
			"bluegreen/internal/platform/platformtest/testapp")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("building the test app: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return filepath.Join(build.dir, "testapp")
}

// RemoveTestApp deletes the binary TestApp built, if any.
func RemoveTestApp() {
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
}

// Eventually polls cond every 20ms until it returns "" or timeout passes,
// then fails the test with cond's last answer.
func Eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Get fetches http://addr/path and returns the body.
func Get(addr, path string) (string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return string(b), nil
}

// AppView is what the test app answers on "/".
type AppView struct {
	Args   []string          `json:"args"`
	Env    map[string]string `json:"env"`
	PID    int               `json:"pid"`
	UID    int               `json:"uid"`
	GID    int               `json:"gid"`
	Groups []int             `json:"groups"`
}

// WaitServing waits until the instance answers "/" and returns its answer.
func WaitServing(t testing.TB, in platform.Instance) AppView {
	t.Helper()
	var v AppView
	Eventually(t, 15*time.Second, func() string {
		body, err := Get(in.Address, "/")
		if err != nil {
			return fmt.Sprintf("instance %s at %s does not answer: %v", in.ID, in.Address, err)
		}
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			return fmt.Sprintf("instance %s: %v in %q", in.ID, err, body)
		}
		return ""
	})
	return v
}

// suite holds what one subtest needs.
type suite struct {
	t     *testing.T
	c     Config
	state string
	p     platform.Platform
	ctx   context.Context
}

func newSuite(t *testing.T, c Config) *suite {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	s := &suite{t: t, c: c, state: t.TempDir(), ctx: ctx}
	s.p = s.open()
	return s
}

// open returns a new Platform value on the suite's state directory. At the
// end of the test, everything it lists is stopped and it is closed.
func (s *suite) open() platform.Platform {
	p := s.c.New(s.t, s.state)
	s.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ins, _ := p.List(ctx, "")
		for _, in := range ins {
			if err := p.Stop(ctx, in.ID, 0); err != nil {
				s.t.Errorf("cleanup: %v", err)
			}
		}
		if c, ok := p.(io.Closer); ok {
			c.Close()
		}
	})
	return p
}

// spec returns the spec of instance index of fleet "green" of app "suite",
// with env added to the test app's own.
func (s *suite) spec(id string, index int, env map[string]string) platform.InstanceSpec {
	sp := s.c.App(s.t)
	sp.ID, sp.App, sp.Revision, sp.Fleet, sp.Index = id, "suite", 3, "green", index
	e := map[string]string{"BIND_HOST": "127.0.0.1"}
	maps.Copy(e, sp.Env)
	maps.Copy(e, env)
	sp.Env = e
	sp.Vars = map[string]string{
		"BG_APP": "suite", "BG_REVISION": "3", "BG_FLEET": "green", "BG_INSTANCE": id,
		"PARAM_COLOR": "teal",
	}
	if sp.StopSignal == "" {
		sp.StopSignal = "SIGTERM"
	}
	if sp.StopTimeout == 0 {
		sp.StopTimeout = 5 * time.Second
	}
	return sp
}

func (s *suite) launch(sp platform.InstanceSpec) platform.Instance {
	s.t.Helper()
	in, err := s.p.Launch(s.ctx, sp)
	if err != nil {
		s.t.Fatalf("Launch %s: %v", sp.ID, err)
	}
	return in
}

// find returns the instance id as p lists it.
func (s *suite) find(p platform.Platform, id string) (platform.Instance, bool) {
	s.t.Helper()
	return Find(s.t, s.ctx, p, id)
}

// logs reads the instance's output without following.
func (s *suite) logs(p platform.Platform, id string, tail int) string {
	s.t.Helper()
	return ReadLogs(s.t, s.ctx, p, id, tail)
}

// Find returns the instance id as p lists it, and whether it does.
func Find(t testing.TB, ctx context.Context, p platform.Platform, id string) (platform.Instance, bool) {
	t.Helper()
	ins, err := p.List(ctx, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, in := range ins {
		if in.ID == id {
			return in, true
		}
	}
	return platform.Instance{}, false
}

// ReadLogs reads the last tail lines (all when tail <= 0) of the
// instance's output, without following.
func ReadLogs(t testing.TB, ctx context.Context, p platform.Platform, id string, tail int) string {
	t.Helper()
	r, err := p.Logs(ctx, id, platform.LogOptions{Tail: tail})
	if err != nil {
		t.Fatalf("Logs %s: %v", id, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("Logs %s: %v", id, err)
	}
	return string(b)
}

// waitLog waits until the instance's output holds want.
func (s *suite) waitLog(p platform.Platform, id, want string) {
	s.t.Helper()
	Eventually(s.t, 10*time.Second, func() string {
		if got := s.logs(p, id, 0); !strings.Contains(got, want) {
			return fmt.Sprintf("logs of %s lack %q:\n%s", id, want, got)
		}
		return ""
	})
}
