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
	plat, err := process.New(process.Options{StateDir: filepath.Join(o.DataDir, instancesDir), Shim: o.ShimCommand, Logger: log})
	if err != nil {
		return 0, err
	}
	defer plat.Close()
	ins, err := plat.List(ctx, "")
	if err != nil {
		return 0, err
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
