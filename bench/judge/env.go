package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/freeport"
)

// env is one bluegreen server over a fresh data directory, the example app
// built beside it, and load from a separate process: real processes all.
type env struct {
	dir, data  string
	bluegreen  string // the binary
	hello      []byte // the example app, packed into every bundle
	prod, test string
	api        *api.Client
	server     *exec.Cmd
	srvDone    chan error
	load       *exec.Cmd
	loadDone   chan error
}

// start builds the binaries from the module at src and starts the server.
func start(ctx context.Context, src string) (*env, error) {
	dir, err := os.MkdirTemp("", "bluegreen-judge-bench-")
	if err != nil {
		return nil, err
	}
	// Passable: a server running as root runs the app as a user of its own,
	// which must reach its revision below.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	e := &env{dir: dir, data: filepath.Join(dir, "data"), bluegreen: filepath.Join(dir, "bluegreen")}
	for pkg, out := range map[string]string{"./cmd/bluegreen": e.bluegreen, "./examples/hello": filepath.Join(dir, "hello")} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		cmd.Dir = src
		if b, err := cmd.CombinedOutput(); err != nil {
			return e, fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	if e.hello, err = os.ReadFile(filepath.Join(dir, "hello")); err != nil {
		return e, err
	}
	for _, p := range []*string{&e.prod, &e.test} {
		if *p, err = freeport.Addr(); err != nil {
			return e, err
		}
	}
	apiAddr, err := freeport.Addr()
	if err != nil {
		return e, err
	}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return e, err
	}
	defer logf.Close()
	cmd := exec.Command(e.bluegreen, "server", "--data", e.data, "--api", apiAddr, "--log-format", "json")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return e, err
	}
	e.server, e.srvDone = cmd, make(chan error, 1)
	go func() { e.srvDone <- cmd.Wait() }()
	e.api = api.NewClient(apiAddr)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if tok, err := os.ReadFile(filepath.Join(e.data, "admin.token")); err == nil {
			e.api.Token = strings.TrimSpace(string(tok))
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := e.api.Events(cctx, "", "", 0, false)
		cancel()
		if err == nil {
			return e, nil
		}
		select {
		case err := <-e.srvDone:
			e.server = nil
			return e, fmt.Errorf("the server exited (%v); see %s", err, logf.Name())
		case <-ctx.Done():
			return e, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return e, errors.New("the server did not answer within 30s")
		}
	}
}

// bundle packs hello with a VERSION and a spec as a .tar.gz.
func (e *env) bundle(version, spec string) ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"hello", 0o755, e.hello}, {"VERSION", 0o644, []byte(version + "\n")}, {"bluegreen.yaml", 0o644, []byte(spec)}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// deploy uploads a version, deploys it and waits (at most timeout) until
// the deployment ends; it returns the deployment and its events.
func (e *env) deploy(ctx context.Context, version, spec string, timeout time.Duration) (api.Deployment, []api.Event, error) {
	b, err := e.bundle(version, spec)
	if err != nil {
		return api.Deployment{}, nil, err
	}
	rev, err := e.api.UploadRevision(ctx, bytes.NewReader(b), version)
	if err != nil {
		return api.Deployment{}, nil, fmt.Errorf("uploading %s: %w", version, err)
	}
	d, err := e.api.Deploy(ctx, rev.App, rev.Generation)
	if err != nil {
		return d, nil, fmt.Errorf("deploying %s: %w", version, err)
	}
	deadline := time.Now().Add(timeout)
	for d.Outcome == "" {
		if time.Now().After(deadline) {
			return d, nil, fmt.Errorf("deployment %s of %s did not end within %s (phase %s)", d.ID, version, timeout, d.Phase)
		}
		select {
		case <-ctx.Done():
			return d, nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if d, err = e.api.Deployment(ctx, d.ID); err != nil {
			return d, nil, err
		}
	}
	evs, err := e.api.Events(ctx, "", d.ID, 0, false)
	return d, evs, err
}

// startLoad runs the load generator at rate requests a second, for at most
// d, as its own process.
func (e *env) startLoad(rate int, d time.Duration) error {
	cmd := exec.Command(e.bluegreen, "load", "-url", "http://"+e.prod+"/", "-rate", fmt.Sprint(rate),
		"-duration", d.String(), "-c", "32")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout = &bytes.Buffer{}
	if err := cmd.Start(); err != nil {
		return err
	}
	e.load, e.loadDone = cmd, make(chan error, 1)
	go func() { e.loadDone <- cmd.Wait() }()
	return nil
}

// stop stops the load, the server, then everything the server left running.
func (e *env) stop() {
	if e.load != nil {
		_ = e.load.Process.Signal(syscall.SIGINT)
		select {
		case <-e.loadDone:
		case <-time.After(10 * time.Second):
			_ = e.load.Process.Kill()
			<-e.loadDone
		}
	}
	if e.server != nil {
		_ = e.server.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.srvDone:
		case <-time.After(15 * time.Second):
			_ = e.server.Process.Kill()
			<-e.srvDone
		}
	}
	if _, err := os.Stat(e.bluegreen); err == nil {
		out, err := exec.Command(e.bluegreen, "server", "--stop-all", "--data", e.data).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "stop-all: %v\n%s", err, out)
		}
	}
}
