package kubernetes

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
	"bluegreen/internal/platform/platformtest"
	"bluegreen/internal/testk8s"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testk8s.Close()
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

// newNamespace makes a namespace of the test's own, deleted at its end.
func newNamespace(t *testing.T, c *testk8s.Cluster) string {
	t.Helper()
	ns, _ := c.Namespace(t)
	return ns
}

// open returns a platform of owner in namespace ns, closed at the test's
// end; it does not stop what it launched (a test's platforms share it).
func open(t *testing.T, c *testk8s.Cluster, ns, owner string) *Platform {
	t.Helper()
	p, err := New(Options{Config: c.RESTConfig(t), Namespace: ns, Owner: owner, StartTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// newPlatform opens a platform of owner in namespace ns; at the test's end
// it stops what it lists.
func newPlatform(t *testing.T, c *testk8s.Cluster, ns, owner string) *Platform {
	t.Helper()
	p := open(t, c, ns, owner)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ins, _ := p.List(ctx, "")
		for _, in := range ins {
			p.Stop(ctx, in.ID, 0)
		}
	})
	return p
}

var appImages struct {
	mu sync.Mutex
	id string
}

// appImage imports (once per test binary) the conformance suite's test app
// as the image "bluegreen.test/testapp:1" and returns it pinned.
func appImage(t *testing.T, c *testk8s.Cluster) platform.Image {
	t.Helper()
	appImages.mu.Lock()
	defer appImages.mu.Unlock()
	if appImages.id == "" {
		appImages.id = c.ImportBinary(t, platformtest.TestApp(t), "bluegreen.test/testapp:1")
	}
	return platform.Image{Ref: "bluegreen.test/testapp:1", ID: appImages.id}
}

// appSpec runs the test app as instance id of app "kube".
func appSpec(t *testing.T, c *testk8s.Cluster, id string, env map[string]string) platform.InstanceSpec {
	t.Helper()
	envs := map[string]string{"BIND_HOST": "127.0.0.1"}
	for k, v := range env {
		envs[k] = v
	}
	return platform.InstanceSpec{
		ID: id, App: "kube", Revision: 1, Fleet: "blue", Dir: t.TempDir(),
		Env: envs, Vars: map[string]string{"BG_INSTANCE": id}, StopSignal: "SIGTERM", StopTimeout: 5 * time.Second,
		Platform: "kubernetes", Container: &platform.Container{Image: appImage(t, c)},
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
	platformtest.Eventually(t, 30*time.Second, func() string {
		var ok bool
		in, ok = find(t, p, id)
		if !ok || in.State != platform.StateExited || in.ExitCode != code {
			return fmt.Sprintf("instance %+v (listed %v), want exited with code %d", in, ok, code)
		}
		return ""
	})
	return in
}
