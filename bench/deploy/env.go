package main

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

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

	"github.com/moby/moby/client"

	"bluegreen/internal/api"
	"bluegreen/internal/freeport"
	"bluegreen/internal/platform/docker/scratch"
	"bluegreen/internal/testdocker"
	"bluegreen/internal/testk8s"
)

// imageTag names the app's image on the private engine.
const imageTag = "bench-hello:1"

// kubeImageTag is the app's image imported into the cluster's node, and
// kubeNamespace where the benchmark's pods run.
const (
	kubeImageTag  = "bluegreen.bench/hello:1"
	kubeNamespace = "bench"
)

// benchEnv is everything the benchmark starts: the binaries, a private
// Docker engine, the app's image and a bluegreen server.
type benchEnv struct {
	o         options
	bluegreen string // the server's binary
	hello     string // the app: one static binary for both platforms
	dir       string // a fresh directory for the data directory and direct runs
	data      string // the server's data directory
	engine    *testdocker.Engine
	docker    *client.Client
	imageID   string
	// kube is the cluster of the kubernetes platform (nil when it is not
	// measured), kcs its admin's client, kubeImageID the app's image.
	kube        *testk8s.Cluster
	kcs         kubernetes.Interface
	kubeImageID string
	server      *exec.Cmd
	srvDone     chan struct{}
	api         *api.Client
	// kamalLive are the instances the kamal-proxy model runs, by
	// platform: the next kamal run replaces them.
	kamalLive map[string][]started
}

// setUp builds, starts the engine and the server.
func (e *benchEnv) setUp(ctx context.Context) error {
	steps := []struct {
		what string
		fn   func(context.Context) error
	}{
		{"building bluegreen and examples/hello (static)", e.build},
		{"starting a private Docker engine", e.startEngine},
		{"building the image " + imageTag + " (FROM scratch, offline)", e.buildImage},
		{"starting bluegreen server", e.startServer},
	}
	if slices.Contains(e.o.Platforms, platformKubernetes) {
		steps = slices.Insert(steps, 3, struct {
			what string
			fn   func(context.Context) error
		}{"starting a single-node Kubernetes cluster, importing " + kubeImageTag, e.startCluster})
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
	e.hello = filepath.Join(e.o.Out, "hello")
	// CGO off: the same file runs as a process and alone in a scratch image.
	if err := e.goBuild(ctx, e.hello, "./examples/hello", "CGO_ENABLED=0"); err != nil {
		return err
	}
	e.bluegreen = e.o.Bluegreen
	if e.bluegreen == "" {
		e.bluegreen = filepath.Join(e.o.Out, "bluegreen")
		return e.goBuild(ctx, e.bluegreen, "./cmd/bluegreen")
	}
	abs, err := filepath.Abs(e.bluegreen)
	e.bluegreen = abs
	return err
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

func (e *benchEnv) startEngine(ctx context.Context) error {
	eng, err := testdocker.Start(testdocker.Options{})
	if err != nil {
		return err
	}
	e.engine = eng
	fmt.Printf("   DOCKER_HOST=%s\n", eng.Host)
	e.docker, err = client.New(client.WithHost(eng.Host))
	return err
}

// serverEnv is the environment of the server and of --stop-all: the
// private engine, and the cluster when there is one.
func (e *benchEnv) serverEnv() []string {
	env := append(os.Environ(), "DOCKER_HOST="+e.engine.Host)
	if e.kube != nil {
		env = append(env, "KUBECONFIG="+e.kube.Kubeconfig)
	}
	return env
}

// startCluster starts the test cluster (built and cached by
// scripts/k8s/build.sh), makes the benchmark's namespace and imports the
// app's image into the node.
func (e *benchEnv) startCluster(ctx context.Context) error {
	c, err := testk8s.Start(os.Stdout)
	if err != nil {
		return err
	}
	e.kube = c
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	if e.kcs, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if _, err := e.kcs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kubeNamespace}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	e.kubeImageID, err = c.Import(e.hello, kubeImageTag, nil)
	return err
}

func (e *benchEnv) buildImage(ctx context.Context) error {
	bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	id, err := scratch.Build(bctx, e.docker, scratch.Options{Binary: e.hello, Tags: []string{imageTag}})
	e.imageID = id
	return err
}

// startServer starts `bluegreen server` over a fresh data directory, with
// DOCKER_HOST naming the private engine, and waits until its API answers.
// It runs apps as the server does by default: as root, each app as a user
// of its own.
func (e *benchEnv) startServer(ctx context.Context) error {
	var err error
	if e.dir, err = os.MkdirTemp("", "bluegreen-deploybench-"); err != nil {
		return err
	}
	// Passable, not listable: each app's own user must reach its
	// revision below the data directory.
	if err := os.Chmod(e.dir, 0o711); err != nil {
		return err
	}
	e.data = filepath.Join(e.dir, "data")
	apiAddr, err := freeport.Addr()
	if err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(e.o.Out, "server.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(e.bluegreen, "server", "--data", e.data, "--api", apiAddr, "--log-format", "json", "--kubernetes-namespace", kubeNamespace)
	cmd.Env = e.serverEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: Ctrl-C reaches the benchmark, which then
	// stops the server and what it left, in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	e.server, e.srvDone = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(e.srvDone) }()
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

// close stops the server, then everything it left running (its router,
// processes and containers: `bluegreen server --stop-all` with
// DOCKER_HOST), then the engine, and removes the fresh directory.
func (e *benchEnv) close() error {
	var errs []error
	e.stopKamal()
	if e.server != nil {
		_ = e.server.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.srvDone:
		case <-time.After(15 * time.Second):
			_ = e.server.Process.Kill()
			<-e.srvDone
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, e.bluegreen, "server", "--stop-all", "--data", e.data, "--kubernetes-namespace", kubeNamespace)
		cmd.Env = e.serverEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("bluegreen server --stop-all: %v\n%s", err, out))
		}
		cancel()
	}
	if e.kube != nil {
		if err := e.kube.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the Kubernetes cluster: %w", err))
		}
	}
	if e.docker != nil {
		e.docker.Close()
	}
	if e.engine != nil {
		if err := e.engine.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the Docker engine: %w", err))
		}
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
	v := map[string]string{"go": runtime.Version(), "cpus": fmt.Sprint(runtime.NumCPU())}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		v["kernel"] = strings.TrimSpace(string(b))
	}
	if b, err := e.git(ctx, "rev-parse", "--short", "HEAD"); err == nil {
		v["commit"] = strings.TrimSpace(string(b))
		if st, err := e.git(ctx, "status", "--porcelain"); err == nil && len(st) > 0 {
			v["commit"] += " (with uncommitted changes)"
		}
	}
	if sv, err := e.docker.ServerVersion(ctx, client.ServerVersionOptions{}); err == nil {
		v["docker"] = sv.Version
		v["docker_api"] = sv.APIVersion
	}
	return v
}
