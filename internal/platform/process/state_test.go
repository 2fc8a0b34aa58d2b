package process

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/platformtest"
	"bluegreen/internal/testwait"
)

// TestReusedPIDIsExited records an instance whose PID now belongs to another
// process (this test's own) with another start time: the platform must see
// it as exited, and Stop must not touch that process.
func TestReusedPIDIsExited(t *testing.T) {
	state := t.TempDir()
	self, err := readStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	files := layout{state}
	os.MkdirAll(files.instancesDir(), 0o750)
	rec := record{
		ID: "reused-0", App: "proc", Host: "127.0.0.1", Port: 1,
		PID: os.Getpid(), StartTicks: self.StartTicks + 1,
		ShimPID: os.Getpid(), ShimStartTicks: self.StartTicks + 1, StopSignal: "SIGTERM",
	}
	if err := writeJSON(files.recordPath(rec.ID), rec); err != nil {
		t.Fatal(err)
	}
	p := newTestPlatform(t, testOptions(state))
	got, ok := findInstance(t, p, rec.ID)
	if !ok || got.State != platform.StateExited || got.ExitCode != -1 {
		t.Fatalf("List = %+v (found %v), want exited with code -1", got, ok)
	}
	if err := p.Stop(testCtx(t), rec.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, ok := findInstance(t, p, rec.ID); ok {
		t.Errorf("Stop left the record")
	}
	// Still here: Stop sent nothing to the process that took the PID.

	// A launch of the ID starts a real instance in place of the stale record.
	writeJSON(files.recordPath(rec.ID), rec)
	in := launch(t, p, appSpec(t, rec.ID, nil))
	if in.State != platform.StateRunning || in.PID == os.Getpid() {
		t.Fatalf("Launch over a stale record = %+v", in)
	}
	platformtest.WaitServing(t, in)
}

func TestLaunchErrors(t *testing.T) {
	p := newTestPlatform(t, testOptions(t.TempDir()))
	dir := t.TempDir()
	missing := shSpec("missing-0", dir, "")
	missing.Command = []string{"./no-such-program", "--flag"}
	notInPath := shSpec("missing-1", dir, "")
	notInPath.Command = []string{"no-such-program-in-path"}
	badDir := shSpec("baddir-0", dir, "sleep 1000")
	badDir.WorkDir = "nope"
	badSignal := shSpec("badsig-0", dir, "sleep 1000")
	badSignal.StopSignal = "SIGNOPE"
	badID := shSpec("Bad_ID", dir, "sleep 1000")
	for _, tc := range []struct {
		spec platform.InstanceSpec
		want []string
	}{
		{missing, []string{"missing-0", "./no-such-program", "no such file"}},
		{notInPath, []string{"missing-1", "no-such-program-in-path", "not found"}},
		{badDir, []string{"baddir-0", "nope"}},
		{badSignal, []string{"badsig-0", "SIGNOPE"}},
		{badID, []string{"Bad_ID"}},
	} {
		_, err := p.Launch(testCtx(t), tc.spec)
		if err == nil {
			t.Errorf("Launch %s succeeded", tc.spec.ID)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Launch %s: %q does not mention %q", tc.spec.ID, err, w)
			}
		}
	}
	if ins, _ := p.List(testCtx(t), ""); len(ins) != 0 {
		t.Errorf("failed launches left instances: %+v", ins)
	}
}

// TestEnvironmentIsBuilt checks that the server's environment does not leak
// into instances unless a spec names a variable.
func TestEnvironmentIsBuilt(t *testing.T) {
	t.Setenv("BLUEGREEN_TEST_SERVER_SECRET", "s3cret")
	p := newTestPlatform(t, testOptions(t.TempDir()))
	in := launch(t, p, appSpec(t, "env-1", map[string]string{"ASKED": "${BLUEGREEN_TEST_SERVER_SECRET}"}))
	v := platformtest.WaitServing(t, in)
	if _, ok := v.Env["BLUEGREEN_TEST_SERVER_SECRET"]; ok {
		t.Errorf("the server's environment leaked into the instance")
	}
	if v.Env["ASKED"] != "s3cret" {
		t.Errorf("ASKED = %q, want the server's value", v.Env["ASKED"])
	}
	if v.Env["PATH"] != os.Getenv("PATH") {
		t.Errorf("PATH = %q, want the server's", v.Env["PATH"])
	}
}

// TestConcurrentCalls runs Launch, List, Logs and Stop at once (meant for
// -race): one ID launched from many goroutines gives one instance.
func TestConcurrentCalls(t *testing.T) {
	p := newTestPlatform(t, testOptions(t.TempDir()))
	ctx := testCtx(t)
	const n = 6
	pids := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			in, err := p.Launch(ctx, appSpec(t, "same-0", nil))
			pids[i], errs[i] = in.PID, err
		})
		wg.Go(func() {
			in, err := p.Launch(ctx, appSpec(t, fmt.Sprintf("other-%d", i), nil))
			if err == nil {
				err = p.Stop(ctx, in.ID, 5*time.Second)
			}
			if err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			if _, err := p.List(ctx, ""); err != nil {
				t.Error(err)
			}
			if r, err := p.Logs(ctx, "same-0", platform.LogOptions{}); err == nil {
				r.Close()
			} else if !errors.Is(err, platform.ErrNotFound) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || pids[i] != pids[0] {
			t.Errorf("launch %d of one ID: pid %d, %v; want pid %d", i, pids[i], errs[i], pids[0])
		}
	}
	rec, err := p.files.readRecord("same-0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killRecord(rec) })
	ins, _ := p.List(ctx, "")
	if len(ins) != 1 || ins[0].ID != "same-0" {
		t.Errorf("List = %+v, want only same-0", ins)
	}
}

// An app that exits is seen exited with its true code, never first with an
// unknown one while its shim is still finishing. The app writes a good deal
// of output just before it exits, so that the shim has work left then.
func TestExitCodeIsNeverUnknownWhileTheShimFinishes(t *testing.T) {
	p := newTestPlatform(t, testOptions(t.TempDir()))
	for i := range 10 {
		id := fmt.Sprintf("exit-%d", i)
		launch(t, p, shSpec(id, t.TempDir(), "head -c 200000 /dev/zero | tr '\\0' x; echo; echo failing >&2; exit 2"))
		var seen platform.Instance
		testwait.For(t, 10*time.Second, id+" to exit", func() bool {
			in, ok := findInstance(t, p, id)
			seen = in
			return ok && in.State == platform.StateExited
		})
		if seen.ExitCode != 2 {
			t.Fatalf("run %d: first seen exited with code %d, want 2", i, seen.ExitCode)
		}
	}
}
