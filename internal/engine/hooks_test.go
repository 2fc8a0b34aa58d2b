package engine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"bluegreen/internal/params"
	"bluegreen/internal/platform"
	"bluegreen/internal/testwait"
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
	t.Run("known secrets are hidden in the output", func(t *testing.T) {
		red := params.NewRedactor("hunter2-very-secret", "-----BEGIN KEY-----\nAAAABBBBCCCC\n-----END KEY-----")
		r := runCommand(ctx, command{Run: `echo "token: hunter2-very-secret"; echo AAAABBBBCCCC; echo fine`, Dir: dir, Timeout: 10 * time.Second, Redact: red})
		if r.Output != "token: [redacted]\n[redacted]\nfine\n" {
			t.Fatalf("output %q", r.Output)
		}
		// A secret cut in two by the output limit is not shown in part.
		long := strings.Repeat("x", hookOutputLimit-10)
		r = runCommand(ctx, command{Run: `printf 'hunter2-very-secret%s\nafter\n' "$LONG"`, Dir: dir, Env: map[string]string{"LONG": long},
			Timeout: 10 * time.Second, Redact: red})
		if r.Output != fmt.Sprintf("[%d earlier bytes not kept]\nafter\n", hookOutputLimit+10) {
			t.Fatalf("output of %d bytes: %.80q…", len(r.Output), r.Output)
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

// What a hook started must not outlive a killed server: a new engine kills
// what is left of the groups the last one recorded, and nothing else.
func TestLeftoverHookGroupsAreKilled(t *testing.T) {
	e := &Engine{opts: Options{RevisionsDir: t.TempDir()}, log: slog.New(slog.DiscardHandler)}
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd := exec.Command("/bin/sh", "-c", "sleep 300 & echo $! > "+pidFile+"; wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.trackGroup(cmd.Process.Pid) // the server "dies" before it forgets the group
	var child int
	testwait.For(t, 10*time.Second, "the hook's child to start", func() bool {
		b, _ := os.ReadFile(pidFile)
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return child > 0
	})
	// The shell dies as Pdeathsig would kill it; its child stays behind.
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	running := func(pid int) bool {
		st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		return err == nil && !strings.Contains(string(st), ") Z ")
	}
	if !running(child) {
		t.Fatal("the child went with the shell; nothing to test")
	}
	stranger := exec.Command("sleep", "300")
	if err := stranger.Start(); err != nil {
		t.Fatal(err)
	}
	defer stranger.Process.Kill()

	e.killLeftoverGroups()
	testwait.For(t, 10*time.Second, "the hook's child to be killed", func() bool { return !running(child) })
	if !running(stranger.Process.Pid) {
		t.Fatal("a process outside the group was killed")
	}
	if ents, _ := os.ReadDir(e.hooksDir()); len(ents) != 0 {
		t.Fatalf("%d groups still recorded", len(ents))
	}
}

// A hook runs as the user it is given, with that user's HOME and USER and
// only the environment it is documented to get.
func TestRunCommandAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("starting a process as another user needs root")
	}
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	u := platform.User{UID: 60601, GID: 60601, Home: "/"}
	t.Setenv("USER", "root")
	r := runCommand(context.Background(), command{
		Run: `echo "$(id -u):$(id -g):$(id -G) home=$HOME user=${USER-unset}"; env | cut -d= -f1 | sort | tr '\n' ' '`,
		Dir: dir, Env: map[string]string{"DATABASE_URL": "postgres://x", "BG_APP": "shop"}, Timeout: 10 * time.Second,
		User: &u, Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID},
	})
	if r.Err != nil {
		t.Fatalf("%v: %s", r.Err, r.Output)
	}
	if !strings.HasPrefix(r.Output, "60601:60601:60601 home=/ user=unset\n") {
		t.Fatalf("output %q", r.Output)
	}
	for _, name := range strings.Fields(strings.SplitN(r.Output, "\n", 2)[1]) {
		switch name {
		case "BG_APP", "DATABASE_URL", "HOME", "PATH", "PWD", "SHLVL", "_", "LANG", "LC_ALL", "TZ", "TMPDIR":
		default:
			t.Errorf("the hook's environment has %s", name)
		}
	}
}
