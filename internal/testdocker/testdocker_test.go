package testdocker

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Close()
	os.Exit(code)
}

func ping(t *testing.T, e *Engine) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := e.Client(t).Ping(ctx, client.PingOptions{})
	return err
}

// Two engines run side by side, build and tag images, restart, and leave
// nothing behind when closed.
func TestEnginesSideBySide(t *testing.T) {
	a := Shared(t)
	b, err := Start(Options{LiveRestore: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.Dir == b.Dir || a.Host == b.Host {
		t.Fatalf("two engines share %s / %s", a.Dir, a.Host)
	}
	if len(filepath.Join(a.Dir, "exec/containerd/containerd.sock.ttrpc")) > 100 {
		t.Errorf("the engine's directory %s is too long for unix sockets", a.Dir)
	}
	for _, e := range []*Engine{a, b} {
		if err := ping(t, e); err != nil {
			t.Fatalf("engine at %s: %v", e.Host, err)
		}
	}
	id := b.BuildGo(t, "bluegreen/internal/platform/platformtest/testapp", "hello:1")
	b.Tag(t, "hello:1", "hello:latest")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	img, err := b.Client(t).ImageInspect(ctx, "hello:latest")
	if err != nil || img.ID != id {
		t.Fatalf("hello:latest is %v (%v), want %s", img.ID, err, id)
	}
	if _, err := a.Client(t).ImageInspect(ctx, "hello:latest"); err == nil {
		t.Errorf("an image built on one engine is seen by the other")
	}

	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := ping(t, b); err == nil {
		t.Fatalf("a stopped engine answers")
	}
	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := ping(t, b); err != nil {
		t.Fatalf("the restarted engine: %v", err)
	}
	if img, err := b.Client(t).ImageInspect(ctx, "hello:1"); err != nil || img.ID != id {
		t.Fatalf("after a restart hello:1 is %v (%v), want %s", img.ID, err, id)
	}

	pid := readPid(filepath.Join(b.Dir, "dockerd.pid"))
	b.Close()
	if _, err := os.Stat(b.Dir); !os.IsNotExist(err) {
		t.Errorf("the engine's directory is still there: %v", err)
	}
	if m := mountsBelow(b.Dir); len(m) > 0 {
		t.Errorf("mounts left behind: %v", m)
	}
	if pid > 0 && startTicks(pid) != 0 && cmdline(pid) != "" {
		t.Errorf("dockerd (pid %d) still runs: %q", pid, cmdline(pid))
	}
}
