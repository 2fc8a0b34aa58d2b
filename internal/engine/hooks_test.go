package engine

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRunCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Run("environment, directory and output", func(t *testing.T) {
		r := runCommand(ctx, command{Run: `echo "$BG_APP in $(pwd)"; echo oops >&2`, Dir: dir, Env: map[string]string{"BG_APP": "shop"}, Timeout: 10 * time.Second})
		if r.Err != nil || r.ExitCode != 0 {
			t.Fatalf("err %v, code %d", r.Err, r.ExitCode)
		}
		if !strings.Contains(r.Output, "shop in "+dir) || !strings.Contains(r.Output, "oops") {
			t.Fatalf("output %q", r.Output)
		}
	})
	t.Run("server secrets are not passed on", func(t *testing.T) {
		t.Setenv("BLUEGREEN_TOKEN", "secret")
		r := runCommand(ctx, command{Run: `echo "token=[$BLUEGREEN_TOKEN]"`, Dir: dir, Timeout: 10 * time.Second})
		if !strings.Contains(r.Output, "token=[]") {
			t.Fatalf("output %q", r.Output)
		}
	})
	t.Run("non-zero exit fails and says the status", func(t *testing.T) {
		r := runCommand(ctx, command{Run: "exit 3", Dir: dir, Timeout: 10 * time.Second})
		if r.Err == nil || r.ExitCode != 3 || !strings.Contains(r.Err.Error(), "status 3") {
			t.Fatalf("err %v, code %d", r.Err, r.ExitCode)
		}
	})
	t.Run("timeout kills the whole process group", func(t *testing.T) {
		pidFile := filepath.Join(dir, "child.pid")
		r := runCommand(ctx, command{Run: "sleep 300 & echo $! > " + pidFile + "; wait", Dir: dir, Timeout: 300 * time.Millisecond})
		if !r.TimedOut || r.Err == nil || !strings.Contains(r.Err.Error(), "timed out after 300ms") {
			t.Fatalf("result %+v", r)
		}
		b, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		deadline := time.Now().Add(10 * time.Second)
		for syscall.Kill(pid, 0) == nil {
			if zombie(pid) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("background child %d outlived the hook", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("output is bounded to its tail", func(t *testing.T) {
		r := runCommand(ctx, command{Run: "yes line | head -c 100000; echo END", Dir: dir, Timeout: 10 * time.Second})
		if len(r.Output) > hookOutputLimit+100 || !strings.HasSuffix(r.Output, "END\n") || !strings.HasPrefix(r.Output, "[") {
			t.Fatalf("output of %d bytes: %.60q…", len(r.Output), r.Output)
		}
	})
}

// zombie reports whether pid has exited but not been reaped (it was
// reparented, so its reaper is not this test).
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] == 'Z'
}
