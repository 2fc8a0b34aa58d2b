package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"bluegreen/internal/freeport"
)

// The app's own start, without bluegreen: the instances are started at
// once, as the platform launches a fleet (a plain exec, or a container
// created and started through the engine's API with the settings the
// Docker platform uses), and each one's /healthz is probed in a tight loop
// from its start until it answers 200.

// probeEvery is the pause between two probes of one instance: short
// enough to resolve a start of a few milliseconds, long enough to leave
// the app a core on a small machine.
const probeEvery = time.Millisecond

// readyTimeout bounds how long a direct start may take.
const readyTimeout = 30 * time.Second

// directRun is one direct start of the instances.
type directRun struct {
	// Ready is from the first start to the last instance answering.
	Ready time.Duration `json:"ready_ns"`
	// PerInstance is each instance's own start-to-answer time.
	PerInstance []time.Duration `json:"per_instance_ns"`
}

// started is one instance started directly, and how to stop it: term
// stops it gracefully (SIGTERM and a wait, or `docker stop`), stop ends
// and removes whatever is left.
type started struct {
	addr string
	at   time.Time
	term func()
	stop func()
}

// start starts instance i on plat, directly.
func (e *benchEnv) start(ctx context.Context, plat string, i int) (started, error) {
	switch plat {
	case platformDocker:
		return e.startContainer(ctx, i)
	case platformKubernetes:
		return e.startPod(ctx, i)
	}
	return e.startProcess(i)
}

func (e *benchEnv) direct(ctx context.Context, plat string) (directRun, error) {
	n := e.o.Instances
	ins := make([]started, n)
	ready := make([]time.Time, n)
	errs := make([]error, n)
	first := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if ins[i], errs[i] = e.start(ctx, plat, i); errs[i] != nil {
				errs[i] = fmt.Errorf("starting %s instance %d directly: %w", plat, i, errs[i])
				return
			}
			ready[i], errs[i] = probe(ctx, ins[i].addr)
		})
	}
	wg.Wait()
	defer func() {
		for _, in := range ins {
			if in.stop != nil {
				in.stop()
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return directRun{}, fmt.Errorf("%s instances started directly: %w", plat, err)
	}
	r := directRun{}
	for i, in := range ins {
		r.PerInstance = append(r.PerInstance, ready[i].Sub(in.at))
		r.Ready = max(r.Ready, ready[i].Sub(first))
	}
	return r, nil
}

// startAll starts every instance at once, as a platform launches a fleet.
// The ones started are returned on an error too, for the caller to stop.
func (e *benchEnv) startAll(ctx context.Context, plat string) ([]started, error) {
	ins := make([]started, e.o.Instances)
	errs := make([]error, e.o.Instances)
	var wg sync.WaitGroup
	for i := range ins {
		wg.Go(func() {
			if ins[i], errs[i] = e.start(ctx, plat, i); errs[i] != nil {
				errs[i] = fmt.Errorf("starting %s instance %d: %w", plat, i, errs[i])
			}
		})
	}
	wg.Wait()
	var ok []started
	for i, in := range ins {
		if errs[i] == nil {
			ok = append(ok, in)
		}
	}
	return ok, errors.Join(errs...)
}

// probe asks addr's /healthz until it answers 200 and returns when it did.
func probe(ctx context.Context, addr string) (time.Time, error) {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://" + addr + "/healthz"
	deadline := time.Now().Add(readyTimeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return time.Time{}, err
		}
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Now(), nil
			}
		}
		if ctx.Err() != nil {
			return time.Time{}, ctx.Err()
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s did not answer 200 within %s (last: %v)", url, readyTimeout, err)
		}
		time.Sleep(probeEvery)
	}
}

// startProcess runs the app as a plain child process.
func (e *benchEnv) startProcess(i int) (started, error) {
	addr, err := freeport.Addr()
	if err != nil {
		return started{}, err
	}
	_, port, _ := net.SplitHostPort(addr)
	log, err := os.OpenFile(filepath.Join(e.o.Out, "direct-process.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return started{}, err
	}
	defer log.Close()
	cmd := exec.Command(e.hello)
	cmd.Env = append(os.Environ(), "PORT="+port, "VERSION=direct", fmt.Sprintf("BG_INSTANCE=direct-%d", i))
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	at := time.Now()
	if err := cmd.Start(); err != nil {
		return started{}, err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	return started{addr: addr, at: at, term: stop, stop: stop}, nil
}

// startContainer creates and starts a container of the image with the
// Docker platform's settings (host network, the engine's init, no new
// privileges).
func (e *benchEnv) startContainer(ctx context.Context, i int) (started, error) {
	addr, err := freeport.Addr()
	if err != nil {
		return started{}, err
	}
	_, port, _ := net.SplitHostPort(addr)
	init := true
	at := time.Now()
	created, err := e.docker.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: e.imageID, Env: []string{"PORT=" + port, "VERSION=direct", fmt.Sprintf("BG_INSTANCE=direct-%d", i)}},
		HostConfig: &container.HostConfig{
			NetworkMode: "host", Init: &init, SecurityOpt: []string{"no-new-privileges:true"},
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		},
	})
	if err != nil {
		return started{}, err
	}
	stop := func() {
		// Not the benchmark's context: a container is removed even
		// after Ctrl-C.
		rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = e.docker.ContainerRemove(rctx, created.ID, client.ContainerRemoveOptions{Force: true})
	}
	if _, err := e.docker.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		stop()
		return started{}, err
	}
	term := func() {
		rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = e.docker.ContainerStop(rctx, created.ID, client.ContainerStopOptions{})
	}
	return started{addr: addr, at: at, term: term, stop: stop}, nil
}
