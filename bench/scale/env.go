package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/freeport"
)

// benchEnv is everything the benchmark starts: the binaries, a bluegreen
// server over a fresh data directory, and the apps it registers.
type benchEnv struct {
	o         options
	bluegreen string
	app       string // the apps' binary, where every app's user can run it
	dir       string // a fresh directory: the data directory, the app binary
	data      string
	apiAddr   string
	prod      string // the production listener every app shares, by host
	test      string
	server    *exec.Cmd
	srvDone   chan struct{}
	api       *api.Client
	token     string
	apps      []*benchApp
}

func (e *benchEnv) setUp(ctx context.Context) error {
	steps := []struct {
		what string
		fn   func(context.Context) error
	}{
		{"building bluegreen and bench/scale/app", e.build},
		{"starting bluegreen server", e.startServer},
	}
	for _, s := range steps {
		fmt.Printf("== %s\n", s.what)
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
	}
	return nil
}

func (e *benchEnv) build(ctx context.Context) error {
	var err error
	if e.dir, err = os.MkdirTemp("", "bluegreen-scalebench-"); err != nil {
		return err
	}
	// Passable, not listable: each app's own user must reach its revision
	// below the data directory, and run the app's binary.
	if err := os.Chmod(e.dir, 0o711); err != nil {
		return err
	}
	bin := filepath.Join(e.dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		return err
	}
	e.app = filepath.Join(bin, "app")
	if err := buildApp(ctx, filepath.Join(e.o.Root, "bench", "scale", "app", "app.c"), e.app); err != nil {
		return err
	}
	e.bluegreen = e.o.Bluegreen
	if e.bluegreen == "" {
		e.bluegreen = filepath.Join(e.o.Out, "bluegreen")
		return e.goBuild(ctx, e.bluegreen, "./cmd/bluegreen")
	}
	e.bluegreen, err = filepath.Abs(e.bluegreen)
	return err
}

// buildApp compiles the instances' program, a single-threaded C responder
// of a few hundred KB: ten thousand Go programs of a few MB and a dozen
// threads each would not fit one machine's memory and process IDs.
func buildApp(ctx context.Context, src, out string) error {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		return errors.New("gcc not found: it builds bench/scale/app/app.c (apt-get install gcc libc6-dev, or scripts/setup.sh)")
	}
	if b, err := exec.CommandContext(ctx, gcc, "-O2", "-Wall", "-o", out, src).CombinedOutput(); err != nil {
		return fmt.Errorf("gcc %s: %v\n%s", src, err, b)
	}
	return nil
}

func (e *benchEnv) goBuild(ctx context.Context, out, pkg string, env ...string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = e.o.Root
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// startServer starts `bluegreen server` over a fresh data directory and
// waits until its API answers.
func (e *benchEnv) startServer(ctx context.Context) error {
	e.data = filepath.Join(e.dir, "data")
	var err error
	for _, p := range []*string{&e.apiAddr, &e.prod, &e.test} {
		if *p, err = freeport.Addr(); err != nil {
			return err
		}
	}
	logf, err := os.Create(filepath.Join(e.o.Out, "server.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{"server", "--data", e.data, "--api", e.apiAddr, "--log-format", "json", "--shim-per", e.o.ShimPer}
	if e.o.RunAs != "" {
		args = append(args, "--run-as", e.o.RunAs)
	}
	cmd := exec.Command(e.bluegreen, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: Ctrl-C reaches the benchmark, which then
	// stops the server and what it left, in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	e.server, e.srvDone = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(e.srvDone) }()
	e.api = api.NewClient(e.apiAddr)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if tok, err := os.ReadFile(filepath.Join(e.data, "admin.token")); err == nil {
			e.token = strings.TrimSpace(string(tok))
			e.api.Token = e.token
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := e.api.Apps(cctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-e.srvDone:
			return fmt.Errorf("the server exited; see %s", logf.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server did not answer within 30s: %v (see %s)", err, logf.Name())
		}
	}
}

// close stops the server, then everything it left running (its router
// and every instance: `bluegreen server --stop-all`), and removes the
// fresh directory.
func (e *benchEnv) close() error {
	var errs []error
	if e.server != nil {
		_ = e.server.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.srvDone:
		case <-time.After(30 * time.Second):
			_ = e.server.Process.Kill()
			<-e.srvDone
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		out, err := exec.CommandContext(ctx, e.bluegreen, "server", "--stop-all", "--data", e.data).CombinedOutput()
		if err != nil {
			errs = append(errs, fmt.Errorf("bluegreen server --stop-all: %v\n%s", err, out))
		}
		cancel()
	}
	if e.dir != "" {
		if err := os.RemoveAll(e.dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (e *benchEnv) git(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = e.o.Root
	return cmd.Output()
}

// versions records what was measured, for results.json.
func (e *benchEnv) versions(ctx context.Context) map[string]string {
	v := map[string]string{"go": runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		v["kernel"] = strings.TrimSpace(string(b))
	}
	if b, err := e.git(ctx, "rev-parse", "--short", "HEAD"); err == nil {
		v["commit"] = strings.TrimSpace(string(b))
		if st, err := e.git(ctx, "status", "--porcelain"); err == nil && len(st) > 0 {
			v["commit"] += " (with uncommitted changes)"
		}
	}
	if b, err := exec.CommandContext(ctx, "chromium", "--version").Output(); err == nil {
		v["chromium"] = strings.TrimSpace(string(b))
	}
	return v
}
