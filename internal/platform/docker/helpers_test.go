package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/docker/scratch"
	"bluegreen/internal/platform/platformtest"
	"bluegreen/internal/testdocker"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testdocker.Close()
	platformtest.RemoveTestApp()
	os.Exit(code)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newOwner returns an owner no other test uses.
func newOwner(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// newPlatform opens a platform of owner on engine e; at the test's end it
// stops what it lists and is closed.
func newPlatform(t *testing.T, e *testdocker.Engine, owner string) *Platform {
	t.Helper()
	p, err := New(Options{DockerHost: e.Host, Owner: owner})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ins, _ := p.List(ctx, "")
		for _, in := range ins {
			p.Stop(ctx, in.ID, 0)
		}
		p.Close()
	})
	return p
}

var appImages struct {
	mu  sync.Mutex
	ids map[string]string // engine host → image ID
}

// appImage builds (once per engine) the conformance suite's test app as
// the image "testapp:1" and returns it pinned.
func appImage(t *testing.T, e *testdocker.Engine) platform.Image {
	t.Helper()
	appImages.mu.Lock()
	defer appImages.mu.Unlock()
	id, ok := appImages.ids[e.Host]
	if !ok {
		id = e.Build(t, scratch.Options{Binary: platformtest.TestApp(t), Tags: []string{"testapp:1"}})
		if appImages.ids == nil {
			appImages.ids = map[string]string{}
		}
		appImages.ids[e.Host] = id
	}
	return platform.Image{Ref: "testapp:1", ID: id}
}

// appSpec runs the test app as instance id of app "dock".
func appSpec(t *testing.T, e *testdocker.Engine, id string, env map[string]string) platform.InstanceSpec {
	t.Helper()
	envs := map[string]string{"BIND_HOST": "127.0.0.1"}
	for k, v := range env {
		envs[k] = v
	}
	return platform.InstanceSpec{
		ID: id, App: "dock", Revision: 1, Fleet: "blue", Dir: t.TempDir(),
		Env: envs, Vars: map[string]string{"BG_INSTANCE": id}, StopSignal: "SIGTERM", StopTimeout: 5 * time.Second,
		Platform: "docker", Container: &platform.Container{Image: appImage(t, e)},
	}
}

func launch(t *testing.T, p *Platform, s platform.InstanceSpec) platform.Instance {
	t.Helper()
	in, err := p.Launch(testCtx(t), s)
	if err != nil {
		t.Fatalf("Launch %s: %v", s.ID, err)
	}
	return in
}

func find(t *testing.T, p *Platform, id string) (platform.Instance, bool) {
	t.Helper()
	return platformtest.Find(t, testCtx(t), p, id)
}

func readLogs(t *testing.T, p *Platform, id string, tail int) string {
	t.Helper()
	return platformtest.ReadLogs(t, testCtx(t), p, id, tail)
}

// waitExited waits until the instance is listed as exited with code.
func waitExited(t *testing.T, p *Platform, id string, code int) platform.Instance {
	t.Helper()
	var in platform.Instance
	platformtest.Eventually(t, 15*time.Second, func() string {
		var ok bool
		in, ok = find(t, p, id)
		if !ok || in.State != platform.StateExited || in.ExitCode != code {
			return fmt.Sprintf("instance %+v (listed %v), want exited with code %d", in, ok, code)
		}
		return ""
	})
	return in
}
