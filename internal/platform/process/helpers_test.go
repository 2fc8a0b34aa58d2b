package process

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/platformtest"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// appSpec runs the conformance suite's test app.
func appSpec(t *testing.T, id string, env map[string]string) platform.InstanceSpec {
	bin := platformtest.TestApp(t)
	e := map[string]string{"BIND_HOST": "127.0.0.1"}
	for k, v := range env {
		e[k] = v
	}
	return platform.InstanceSpec{
		ID: id, App: "proc", Revision: 1, Fleet: "blue",
		Dir: filepath.Dir(bin), WorkDir: ".", Command: []string{"./" + filepath.Base(bin)},
		Env: e, Vars: map[string]string{"BG_INSTANCE": id}, StopSignal: "SIGTERM", StopTimeout: 5 * time.Second,
	}
}

// shSpec runs a shell script as the app, in dir.
func shSpec(id, dir, script string) platform.InstanceSpec {
	return platform.InstanceSpec{
		ID: id, App: "proc", Fleet: "blue", Dir: dir, WorkDir: ".",
		Command: []string{"sh", "-c", script}, StopSignal: "SIGTERM", StopTimeout: 5 * time.Second,
	}
}

// launch launches and makes sure that, whatever happens to the test, the
// instance's processes are killed at its end.
func launch(t *testing.T, p *Platform, sp platform.InstanceSpec) platform.Instance {
	t.Helper()
	in, err := p.Launch(testCtx(t), sp)
	if err != nil {
		t.Fatalf("Launch %s: %v", sp.ID, err)
	}
	rec, err := p.files.readRecord(sp.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killRecord(rec) })
	return in
}

// killRecord kills what is left of an instance, checking start times so
// that no reused PID is hit. The shim is asked first, as it alone can reach
// the daemons below the app; SIGKILL is for a shim that does not answer.
func killRecord(rec record) {
	if rec.ShimShared && alive(rec.ShimPID, rec.ShimStartTicks) {
		// The fleet's shim is asked to kill this one app; it ends by
		// itself after its last.
		var answer shimAnswer
		askShim(context.Background(), rec.ShimPID, rec.ShimStartTicks, shimRequest{Kill: rec.ID}, &answer)
		waitFor(context.Background(), 5*time.Second, func() bool { return !alive(rec.PID, rec.StartTicks) })
	} else if alive(rec.ShimPID, rec.ShimStartTicks) {
		syscall.Kill(rec.ShimPID, shimKill)
		gone := func() bool { return !alive(rec.ShimPID, rec.ShimStartTicks) }
		if !waitFor(context.Background(), 5*time.Second, gone) {
			syscall.Kill(rec.ShimPID, syscall.SIGKILL)
		}
	}
	if alive(rec.PID, rec.StartTicks) {
		syscall.Kill(-rec.PID, syscall.SIGKILL)
	}
}

// groupMembers lists the live (not zombie) processes whose process group
// is pgid.
func groupMembers(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, err := readStat(pid); err == nil && s.PGID == pgid && s.State != 'Z' {
			pids = append(pids, pid)
		}
	}
	return pids
}

// pidAlive reports whether pid runs (a zombie does not).
func pidAlive(pid int) bool {
	s, err := readStat(pid)
	return err == nil && s.State != 'Z'
}

// readPids reads the PIDs a test script wrote to path, one a line.
func readPids(path string) []int {
	b, _ := os.ReadFile(path)
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func findInstance(t *testing.T, p *Platform, id string) (platform.Instance, bool) {
	t.Helper()
	ins, err := p.List(testCtx(t), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range ins {
		if in.ID == id {
			return in, true
		}
	}
	return platform.Instance{}, false
}

func readLogs(t *testing.T, p *Platform, id string, tail int) string {
	t.Helper()
	r, err := p.Logs(testCtx(t), id, platform.LogOptions{Tail: tail})
	if err != nil {
		t.Fatalf("Logs %s: %v", id, err)
	}
	defer r.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

func waitLogs(t *testing.T, p *Platform, id, want string) {
	t.Helper()
	platformtest.Eventually(t, 10*time.Second, func() string {
		if got := readLogs(t, p, id, 0); !strings.Contains(got, want) {
			return fmt.Sprintf("logs of %s lack %q; last lines:\n%s", id, want, readLogs(t, p, id, 5))
		}
		return ""
	})
}
