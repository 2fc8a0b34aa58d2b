package docker

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/platformtest"
	"bluegreen/internal/testdocker"
)

func TestDescribe(t *testing.T) {
	e := testdocker.Shared(t)
	p := newPlatform(t, e, newOwner("describe"))
	info, err := p.Describe(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.Address != e.Host || info.Source != "the server's settings" || info.Version == "" || info.APIVersion == "" {
		t.Errorf("Describe = %+v", info)
	}
	t.Logf("engine %s, API %s, live-restore %v", info.Version, info.APIVersion, info.LiveRestore)
}

// wantUnavailable checks that err says the engine cannot be reached, with
// its address and where the address came from.
func wantUnavailable(t *testing.T, what string, err error, host, source string) {
	t.Helper()
	if !errors.Is(err, platform.ErrUnavailable) || !strings.Contains(err.Error(), host) || !strings.Contains(err.Error(), "(from "+source+")") {
		t.Errorf("%s with the engine unreachable: %v; want ErrUnavailable naming %s (from %s)", what, err, host, source)
	}
}

func TestUnreachableEngine(t *testing.T) {
	host := "unix:///tmp/bgd-none-" + strconv.Itoa(os.Getpid()) + "/docker.sock"
	t.Setenv("DOCKER_HOST", host)
	p, err := New(Options{Owner: "nobody"})
	if err != nil {
		t.Fatalf("New with the engine down: %v", err)
	}
	defer p.Close()
	ctx := testCtx(t)
	_, err = p.List(ctx, "")
	wantUnavailable(t, "List", err, host, "DOCKER_HOST")
	t.Logf("List: %v", err)
	_, err = p.Launch(ctx, platform.InstanceSpec{ID: "x-0", Container: &platform.Container{Image: platform.Image{Ref: "a:1", ID: "sha256:00"}}})
	wantUnavailable(t, "Launch", err, host, "DOCKER_HOST")
	wantUnavailable(t, "Stop", p.Stop(ctx, "x-0", time.Second), host, "DOCKER_HOST")
	_, err = p.Logs(ctx, "x-0", platform.LogOptions{})
	wantUnavailable(t, "Logs", err, host, "DOCKER_HOST")
	_, err = p.Resolve(ctx, "hello:1", platform.PullMissing, nil)
	wantUnavailable(t, "Resolve", err, host, "DOCKER_HOST")
	_, err = p.Describe(ctx)
	wantUnavailable(t, "Describe", err, host, "DOCKER_HOST")

	q, err := New(Options{Owner: "nobody", DockerHost: "tcp://127.0.0.1:1", DockerHostSource: "--docker-host"})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	_, err = q.List(ctx, "")
	wantUnavailable(t, "List", err, "tcp://127.0.0.1:1", "--docker-host")

	if _, err := New(Options{Owner: "nobody", DockerHost: "nonsense"}); err == nil || !strings.Contains(err.Error(), `"nonsense"`) {
		t.Errorf("New with a malformed address: %v", err)
	}
}

// An engine that stops answering (stopped with SIGSTOP) fails calls within
// the timeout; they succeed again once it answers.
func TestHungEngine(t *testing.T) {
	e := testdocker.New(t, testdocker.Options{})
	p, err := New(Options{DockerHost: e.Host, Owner: newOwner("hung"), Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.List(testCtx(t), ""); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(e.Dir, "dockerd.pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	syscall.Kill(pid, syscall.SIGSTOP)
	platformtest.Eventually(t, 10*time.Second, func() string {
		if !allStopped(pid) {
			return "dockerd's threads are not all stopped"
		}
		return ""
	})
	_, err = p.List(testCtx(t), "")
	syscall.Kill(pid, syscall.SIGCONT)
	if !errors.Is(err, platform.ErrUnavailable) || !strings.Contains(err.Error(), "did not answer within") {
		t.Errorf("List of a hung engine: %v", err)
	}
	platformtest.Eventually(t, 10*time.Second, func() string {
		if _, err := p.List(testCtx(t), ""); err != nil {
			return err.Error()
		}
		return ""
	})
}

// When the engine restarts, every call fails with a clear error while it is
// down and succeeds once it is back. With live-restore the containers keep
// running through the restart; without, the engine stops them and they are
// listed as exited until launched again.
func TestEngineRestart(t *testing.T) {
	for _, live := range []bool{false, true} {
		name := "without live-restore"
		if live {
			name = "with live-restore"
		}
		t.Run(name, func(t *testing.T) {
			e := testdocker.New(t, testdocker.Options{LiveRestore: live})
			p := newPlatform(t, e, newOwner("restart"))
			ctx := testCtx(t)
			if info, err := p.Describe(ctx); err != nil || info.LiveRestore != live {
				t.Fatalf("Describe = %+v, %v", info, err)
			}
			s := appSpec(t, e, "through-0", nil)
			in := launch(t, p, s)
			platformtest.WaitServing(t, in)

			if err := e.Stop(); err != nil {
				t.Fatal(err)
			}
			src := "the server's settings"
			_, err := p.List(ctx, "")
			wantUnavailable(t, "List", err, e.Host, src)
			_, err = p.Launch(ctx, s)
			wantUnavailable(t, "Launch", err, e.Host, src)
			wantUnavailable(t, "Stop", p.Stop(ctx, s.ID, time.Second), e.Host, src)
			_, err = p.Logs(ctx, s.ID, platform.LogOptions{})
			wantUnavailable(t, "Logs", err, e.Host, src)
			if _, err := platformtest.Get(in.Address, "/healthz"); (err == nil) != live {
				t.Errorf("with the engine down, the instance answers: %v (live-restore %v)", err == nil, live)
			}

			if err := e.Restart(); err != nil {
				t.Fatal(err)
			}
			got, ok := find(t, p, s.ID)
			switch {
			case !ok:
				t.Fatalf("after the restart the instance is not listed")
			case live && (got.State != platform.StateRunning || got.PID != in.PID):
				t.Errorf("with live-restore the instance is %+v, want still running as pid %d", got, in.PID)
			case !live && (got.State != platform.StateExited || got.ExitCode != 0):
				t.Errorf("without live-restore the instance is %+v, want exited (stopped gracefully by the engine)", got)
			}
			if logs := readLogs(t, p, s.ID, 0); !strings.Contains(logs, "testapp listening on") {
				t.Errorf("logs after the restart: %q", logs)
			}
			again := launch(t, p, s)
			if again.State != platform.StateRunning || (live && again.PID != in.PID) {
				t.Errorf("Launch after the restart = %+v", again)
			}
			platformtest.WaitServing(t, again)
		})
	}
}

// allStopped reports whether every thread of pid is stopped by a signal.
func allStopped(pid int) bool {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/stat")
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			return false
		}
		s := string(b)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) == 0 || f[0] != "T" {
			return false
		}
	}
	return len(tasks) > 0
}
