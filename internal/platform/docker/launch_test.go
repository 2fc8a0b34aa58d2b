package docker

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/docker/scratch"
	"bluegreen/internal/platform/platformtest"
	"bluegreen/internal/testdocker"
)

// versionImage builds the test app with /etc/version holding version, tagged tags.
func versionImage(t *testing.T, e *testdocker.Engine, version string, tags ...string) string {
	t.Helper()
	return e.Build(t, scratch.Options{
		Binary: platformtest.TestApp(t), Files: map[string]string{"/etc/version": version}, Tags: tags,
	})
}

// Every instance of a revision runs the image ID it pinned, whatever its
// tag points at now.
func TestLaunchRunsThePinnedImage(t *testing.T) {
	e := testdocker.Shared(t)
	p := newPlatform(t, e, newOwner("pin"))
	ctx := testCtx(t)
	v1 := versionImage(t, e, "1", "pinned:1", "pinned:latest")
	img, err := p.Resolve(ctx, "pinned:latest", platform.PullNever, nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != v1 || img.Ref != "pinned:latest" || img.Digest != "" {
		t.Fatalf("Resolve = %+v, want ID %s and no digest (built here)", img, v1)
	}
	built, err := p.BuildImage(ctx, scratch.Options{
		Binary: platformtest.TestApp(t), Files: map[string]string{"/etc/version": "2"}, Tags: []string{"pinned:2", "pinned:latest"},
	})
	if err != nil || built.Ref != "pinned:2" {
		t.Fatalf("BuildImage = %+v, %v", built, err)
	}
	v2 := built.ID
	if now, err := p.Resolve(ctx, "pinned:latest", platform.PullNever, nil); err != nil || now.ID != v2 {
		t.Fatalf("after the tag moved, Resolve = %+v, %v; want %s", now, err, v2)
	}
	s := appSpec(t, e, "pinned-0", nil)
	s.Container.Image = img
	in := launch(t, p, s)
	platformtest.WaitServing(t, in)
	if got, err := platformtest.Get(in.Address, "/file?path=/etc/version"); err != nil || got != "1" {
		t.Errorf("the instance runs version %q (%v), want 1: the image pinned, not the tag", got, err)
	}
	if !strings.Contains(in.Detail, "pinned:latest") || !strings.Contains(in.Detail, v1[:19]) {
		t.Errorf("Detail = %q, want the reference and the pinned ID", in.Detail)
	}
}

func TestVolumesAreReadOnlyAndStayInTheRevision(t *testing.T) {
	e := testdocker.Shared(t)
	p := newPlatform(t, e, newOwner("vol"))
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "conf"), 0o755)
	os.WriteFile(filepath.Join(dir, "conf", "app.txt"), []byte("from the revision"), 0o644)
	os.Symlink("conf", filepath.Join(dir, "conf-link"))
	os.Symlink("/etc", filepath.Join(dir, "etc-link"))
	os.Symlink("../..", filepath.Join(dir, "conf", "up"))

	for _, src := range []string{"../outside", "/etc", "etc-link", "conf/up", "conf/up/etc", "missing"} {
		s := appSpec(t, e, "escape-0", nil)
		s.Dir = dir
		s.Container.Volumes = []platform.Volume{{Source: src, Target: "/x"}}
		_, err := p.Launch(testCtx(t), s)
		if err == nil || !strings.Contains(err.Error(), "volume "+src) {
			t.Errorf("a volume from %q: Launch = %v, want an error naming it", src, err)
		}
	}
	if _, ok := find(t, p, "escape-0"); ok {
		t.Errorf("a refused Launch left a container behind")
	}

	s := appSpec(t, e, "vol-0", nil)
	s.Dir = dir
	s.Container.Volumes = []platform.Volume{{Source: "conf-link", Target: "/conf"}, {Source: "conf/app.txt", Target: "/app.txt"}}
	s.Container.Tmpfs = []platform.Tmpfs{{Target: "/scratch", SizeBytes: 1 << 20}}
	in := launch(t, p, s)
	platformtest.WaitServing(t, in)
	for _, path := range []string{"/conf/app.txt", "/app.txt"} {
		if got, err := platformtest.Get(in.Address, "/file?path="+path); err != nil || got != "from the revision" {
			t.Errorf("%s in the container = %q, %v", path, got, err)
		}
	}
	if got, err := platformtest.Get(in.Address, "/write?path=/conf/new"); err == nil || !strings.Contains(got, "read-only file system") {
		t.Errorf("writing in a volume: %q, %v; want read-only file system", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "conf", "new")); err == nil {
		t.Errorf("the container wrote into the revision")
	}
	if got, err := platformtest.Get(in.Address, "/write?path=/scratch/new"); err != nil {
		t.Errorf("writing in the tmpfs: %q, %v", got, err)
	}
}

func TestUserLimitsAndOverrides(t *testing.T) {
	e := testdocker.Shared(t)
	p := newPlatform(t, e, newOwner("user"))
	ctx := testCtx(t)
	s := appSpec(t, e, "user-0", nil)
	s.User = &platform.User{UID: 65534, GID: 65533, Groups: []uint32{100, 101}}
	s.Container.MemoryBytes = 64 << 20
	s.Container.NanoCPUs = 500_000_000
	s.Container.WorkDir = "/work"
	s.Command = []string{"--port=${PORT}", "--instance=${BG_INSTANCE}"}
	in := launch(t, p, s)
	v := platformtest.WaitServing(t, in)
	if v.UID != 65534 || v.GID != 65533 || !slices.Contains(v.Groups, 100) || !slices.Contains(v.Groups, 101) {
		t.Errorf("the app runs as uid %d gid %d groups %v, want the instance's user 65534:65533 with 100 and 101", v.UID, v.GID, v.Groups)
	}
	_, port, _ := strings.Cut(in.Address, ":")
	if got := strings.Join(v.Args, " "); got != "--port="+port+" --instance=user-0" {
		t.Errorf("args %q, want the command expanded", got)
	}
	c, _, err := p.inspect(ctx, "user-0")
	if err != nil {
		t.Fatal(err)
	}
	h := c.HostConfig
	switch {
	case h.Memory != 64<<20 || h.NanoCPUs != 500_000_000:
		t.Errorf("limits: memory %d, nano CPUs %d", h.Memory, h.NanoCPUs)
	case !slices.Contains(h.SecurityOpt, "no-new-privileges:true") || h.Privileged || h.PidMode != "" || len(h.CapAdd) > 0:
		t.Errorf("privileges: %v, privileged %v, pid mode %q, cap add %v", h.SecurityOpt, h.Privileged, h.PidMode, h.CapAdd)
	case h.NetworkMode != "host" || string(h.RestartPolicy.Name) != "no":
		t.Errorf("network %q, restart policy %q", h.NetworkMode, h.RestartPolicy.Name)
	case h.LogConfig.Type != "json-file" || h.LogConfig.Config["max-size"] == "" || h.LogConfig.Config["max-file"] == "":
		t.Errorf("log driver %+v, want json-file with bounded files", h.LogConfig)
	case c.Config.WorkingDir != "/work" || c.Config.User != "65534:65533":
		t.Errorf("working directory %q, user %q", c.Config.WorkingDir, c.Config.User)
	}
	for k, want := range map[string]string{
		labelOwner: p.opts.Owner, labelApp: "dock", labelRevision: "1", labelFleet: "blue", labelIndex: "0",
		labelInstance: "user-0", labelPort: port, labelImage: "testapp:1", labelImageID: s.Container.Image.ID,
		labelStopSignal: "SIGTERM",
	} {
		if got := c.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}

	// The container's own user wins over the instance's.
	s = appSpec(t, e, "user-1", nil)
	s.User = &platform.User{UID: 65534, GID: 65534}
	s.Container.User = "1234:5678"
	v = platformtest.WaitServing(t, launch(t, p, s))
	if v.UID != 1234 || v.GID != 5678 {
		t.Errorf("with a container user, the app runs as %d:%d, want 1234:5678", v.UID, v.GID)
	}
}

// A container that exits at start is listed as exited with its code, and
// its last lines stay readable until it is stopped.
func TestExitAtStart(t *testing.T) {
	e := testdocker.Shared(t)
	p := newPlatform(t, e, newOwner("exit"))
	s := appSpec(t, e, "exit-0", map[string]string{"TESTAPP_EXIT_AFTER_MS": "0", "TESTAPP_EXIT_CODE": "3", "TESTAPP_LINES": "3"})
	launch(t, p, s)
	waitExited(t, p, "exit-0", 3)
	if got := readLogs(t, p, "exit-0", 2); !strings.Contains(got, "exiting with code 3") {
		t.Errorf("the last lines of the exited container = %q", got)
	}
	if err := p.Stop(testCtx(t), "exit-0", time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Logs(testCtx(t), "exit-0", platform.LogOptions{}); !errors.Is(err, platform.ErrNotFound) {
		t.Errorf("Logs after Stop: %v, want ErrNotFound", err)
	}
}

// A container whose program does not exist exits at start (the engine's
// init cannot run it) with code 127, and its output says why.
func TestLaunchOfABadEntrypoint(t *testing.T) {
	e := testdocker.Shared(t)
	p := newPlatform(t, e, newOwner("entry"))
	s := appSpec(t, e, "entry-0", nil)
	s.Container.Entrypoint = []string{"/no/such/program"}
	launch(t, p, s)
	waitExited(t, p, "entry-0", 127)
	if got := readLogs(t, p, "entry-0", 0); !strings.Contains(got, "/no/such/program") {
		t.Errorf("the output of the container does not name the missing program: %q", got)
	}
}

func TestLogsAreRedacted(t *testing.T) {
	e := testdocker.Shared(t)
	p, err := New(Options{DockerHost: e.Host, Owner: newOwner("redact"), Redact: func() func(string) string {
		return func(s string) string { return strings.ReplaceAll(s, "hunter2", "[redacted]") }
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	in := launch(t, p, appSpec(t, e, "redact-0", nil))
	defer p.Stop(testCtx(t), in.ID, 0)
	platformtest.WaitServing(t, in)
	if _, err := platformtest.Get(in.Address, "/print?n=1&tag=hunter2"); err != nil {
		t.Fatal(err)
	}
	platformtest.Eventually(t, 10*time.Second, func() string {
		got := readLogs(t, p, in.ID, 0)
		if strings.Contains(got, "hunter2") || !strings.Contains(got, "[redacted] line 1") {
			return fmt.Sprintf("logs %q, want the secret hidden", got)
		}
		return ""
	})
}

// Stop with a negative grace waits the stop timeout the instance was
// launched with: the app gets its stop signal and time to act on it.
func TestStopWithTheLaunchedTimeout(t *testing.T) {
	e := testdocker.Shared(t)
	p := newPlatform(t, e, newOwner("grace"))
	in := launch(t, p, appSpec(t, e, "grace-0", nil))
	platformtest.WaitServing(t, in)
	r, err := p.Logs(testCtx(t), in.ID, platform.LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := p.Stop(testCtx(t), in.ID, -1); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(r)
	if !strings.Contains(string(out), "stopping on SIGTERM") || !strings.Contains(string(out), "stopped") {
		t.Errorf("the app was not given its stop timeout:\n%s", out)
	}
	if _, ok := find(t, p, in.ID); ok {
		t.Errorf("the instance is still listed after Stop")
	}
}
