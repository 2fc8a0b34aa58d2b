package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/process"
	"bluegreen/internal/routerproc"
)

// StopAllOptions configure StopAll.
type StopAllOptions struct {
	DataDir       string
	RouterCommand []string
	ShimCommand   []string
	// Grace is how long each instance may take to stop before it is killed;
	// zero: the stop_timeout each was launched with.
	Grace  time.Duration
	Logger *slog.Logger
	// DockerHost is the engine the server's containers run on (empty:
	// DOCKER_HOST, else the Docker default).
	DockerHost string
	// Kubernetes is the cluster the server's pods run on.
	Kubernetes Kubernetes
}

// StopAll takes down everything a server of the data directory left
// running: every instance (gracefully, then forcibly) and the router. It
// refuses while the server itself runs, since the server would start the
// live instances again. The store is not touched: the next `bluegreen
// server` starts the live revisions afresh.
func StopAll(ctx context.Context, o StopAllOptions) (stopped int, err error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Grace <= 0 {
		o.Grace = -1 // the platform's: each instance's own stop timeout
	}
	if in, err := ReadInfo(o.DataDir); err == nil && in.PID > 0 && syscall.Kill(in.PID, 0) == nil && isServer(in.PID) {
		return 0, fmt.Errorf("the server (pid %d) is running on %s: stop it first (SIGTERM), then run --stop-all", in.PID, o.DataDir)
	}
	if _, err := os.Stat(o.DataDir); err == nil {
		// Held while stopping, so that no server starts the live fleets
		// again meanwhile.
		lock, err := lockDataDir(o.DataDir)
		if errors.Is(err, ErrDataDirInUse) {
			return 0, fmt.Errorf("%w: stop it first (SIGTERM), then run --stop-all", err)
		}
		if err == nil {
			defer lock.Close()
		}
	}
	procs, err := process.New(process.Options{StateDir: filepath.Join(o.DataDir, instancesDir), Shim: o.ShimCommand, Logger: log})
	if err != nil {
		return 0, err
	}
	defer procs.Close()
	plats := []platform.Platform{procs}
	// Containers only if the server ever labelled any: its identity is
	// made at its first start.
	if _, err := os.Stat(filepath.Join(o.DataDir, idFile)); err == nil {
		containers, err := openDocker(ctx, o.DataDir, o.DockerHost, nil, nil)
		if err != nil {
			return 0, err
		}
		defer containers.Close()
		plats = append(plats, containers)
		pods, err := openKubernetes(ctx, o.DataDir, o.Kubernetes, nil, nil)
		if err != nil {
			return 0, err
		}
		if pods != nil {
			defer pods.Close()
			plats = append(plats, pods)
		}
	}
	plat := platform.NewSet(plats...)
	var ins []platform.Instance
	for _, name := range plat.Names() {
		some, err := plat.ListOn(ctx, "", []string{name})
		if err != nil {
			if name == "docker" && errors.Is(err, platform.ErrUnavailable) {
				log.Warn("no Docker engine answers: its containers, if any, are left as they are", "err", err)
				continue
			}
			if name == "kubernetes" && errors.Is(err, platform.ErrUnavailable) {
				log.Warn("no Kubernetes API server answers: its pods, if any, are left as they are", "err", err)
				continue
			}
			return 0, err
		}
		ins = append(ins, some...)
	}
	errs := make(chan error, len(ins))
	for _, in := range ins {
		go func(id string) { errs <- plat.Stop(ctx, id, o.Grace) }(in.ID)
	}
	var all []error
	for range ins {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	dir := filepath.Join(o.DataDir, routerDir)
	hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, herr := routerproc.NewClient("unix:"+filepath.Join(dir, routerproc.SocketFile), "").Health(hctx)
	cancel()
	if herr == nil {
		sup, err := routerproc.Start(ctx, routerproc.Options{Dir: dir, Command: o.RouterCommand, Logger: log, WatchInterval: -1})
		if err != nil {
			all = append(all, err)
		} else if err := sup.StopRouter(ctx); err != nil {
			all = append(all, err)
		}
	}
	return len(ins), errors.Join(all...)
}

// isServer reports whether pid runs `bluegreen server` (and is not a
// process that took over a dead server's pid).
func isServer(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return true // cannot tell: be careful
	}
	args := splitNUL(b)
	for _, a := range args {
		if a == "server" {
			return true
		}
	}
	return false
}

func splitNUL(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	return out
}
