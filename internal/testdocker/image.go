package testdocker

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"

	"bluegreen/internal/platform/docker/scratch"
)

var binaries struct {
	mu    sync.Mutex
	dir   string
	built map[string]string // import path → binary
}

// GoBinary builds the Go package pkg (an import path) as a static binary,
// once per test binary, and returns its path. Close removes it.
func GoBinary(t testing.TB, pkg string) string {
	t.Helper()
	binaries.mu.Lock()
	defer binaries.mu.Unlock()
	if bin, ok := binaries.built[pkg]; ok {
		return bin
	}
	if binaries.dir == "" {
		dir, err := os.MkdirTemp("", "bluegreen-testdocker-")
		if err != nil {
			t.Fatal(err)
		}
		binaries.dir, binaries.built = dir, map[string]string{}
	}
	bin := filepath.Join(binaries.dir, fmt.Sprintf("bin%d", len(binaries.built)))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s as a static binary: %v\n%s", pkg, err, out)
	}
	binaries.built[pkg] = bin
	return bin
}

// BuildGo builds an image (FROM scratch) of the Go package pkg, tagged with
// tags, and returns its ID.
func (e *Engine) BuildGo(t testing.TB, pkg string, tags ...string) string {
	t.Helper()
	return e.Build(t, scratch.Options{Binary: GoBinary(t, pkg), Tags: tags})
}

// Build builds an image as o says and returns its ID.
func (e *Engine) Build(t testing.TB, o scratch.Options) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli := e.Client(t)
	id, err := scratch.Build(ctx, cli, o)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Tag makes target name the image source names ("hello:1" → "hello:latest").
func (e *Engine) Tag(t testing.TB, source, target string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.Client(t).ImageTag(ctx, client.ImageTagOptions{Source: source, Target: target}); err != nil {
		t.Fatalf("tagging %s as %s: %v", source, target, err)
	}
}

// RemoveImage removes ref (a tag, or an ID with all its tags) from the
// engine.
func (e *Engine) RemoveImage(t testing.TB, ref string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.Client(t).ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true}); err != nil {
		t.Fatalf("removing image %s: %v", ref, err)
	}
}

// Push pushes ref ("127.0.0.1:PORT/hello:1") to its registry, logged in as
// username (anonymously when username is "").
func (e *Engine) Push(t testing.TB, ref, username, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := client.ImagePushOptions{}
	if username != "" {
		host, _, _ := strings.Cut(ref, "/")
		enc, err := authconfig.Encode(registry.AuthConfig{Username: username, Password: password, ServerAddress: host})
		if err != nil {
			t.Fatal(err)
		}
		opts.RegistryAuth = enc
	}
	res, err := e.Client(t).ImagePush(ctx, ref, opts)
	if err == nil {
		err = res.Wait(ctx)
		res.Close()
	}
	if err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
}

func removeBinaries() {
	binaries.mu.Lock()
	defer binaries.mu.Unlock()
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
		binaries.dir, binaries.built = "", nil
	}
}
