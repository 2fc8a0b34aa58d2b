package routerproc

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pidAlive reports whether a process with this pid exists and is not a zombie.
// A router orphaned by a killed server is reaped by whatever adopts it, which
// may be slow to do so; a zombie has stopped serving and counts as gone.
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	return !isZombie(pid)
}

// routerAlive reports whether pid is alive and still the router run from
// routesFile, so that a pid recycled by an unrelated process is never taken for
// the router, let alone signalled.
func routerAlive(pid int, routesFile string) bool {
	return pidAlive(pid) && runsRouteFile(pid, routesFile)
}

// readPidFile returns the pid recorded in path, or 0.
func readPidFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// waitGone waits until pid has exited, or until the deadline; it reports
// whether the process is gone.
func waitGone(pid int, exited <-chan struct{}, deadline time.Time) bool {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		// A router this process started is gone once it is reaped
		// (exited closes then); until then its pid may look dead early
		// (a Go program's main thread ends before its other threads).
		if exited == nil && !pidAlive(pid) {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		select {
		case <-exited:
			return true
		case <-tick.C:
		}
	}
}

func signalPid(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("sending %s to router pid %d: %w", sig, pid, err)
	}
	return nil
}
