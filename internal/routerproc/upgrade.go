package routerproc

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"bluegreen/internal/router"
)

// Version is the answer of the router's GET /version: the process serving
// the admin API and the program it runs.
type Version struct {
	Pid        int    `json:"pid"`
	Build      string `json:"build"` // router.Build of its executable
	Generation uint64 `json:"generation"`
}

// Version asks the router which process and program serve it.
func (c *Client) Version(ctx context.Context) (Version, error) {
	var out Version
	err := c.do(ctx, http.MethodGet, "/version", nil, &out)
	return out, err
}

// UpgradeReport says which router process took over from which.
type UpgradeReport struct {
	OldPid int
	Pid    int
	// Took runs from the start of the new process until it served the
	// listeners and the admin socket alone.
	Took time.Duration
}

// Upgrade replaces the running router by a new process of Options.Command
// that takes its listening sockets over (router --take-over): the new one
// accepts on the same sockets, moves the admin socket to itself, and the old
// one stops accepting, lets its requests and upgraded connections finish
// and exits. No socket closes, so no connection is refused. If the new
// process fails before it took over, the old one keeps serving and the
// error says why.
func (s *Supervisor) Upgrade(ctx context.Context) (UpgradeReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.upgradeLocked(ctx)
}

func (s *Supervisor) upgradeLocked(ctx context.Context) (UpgradeReport, error) {
	if _, err := s.probe(ctx); err != nil {
		return UpgradeReport{}, fmt.Errorf("upgrading the router: none answers on %s: %w", s.sock, err)
	}
	old := s.findPid()
	start := time.Now()
	pid, exited, err := s.spawn("--take-over")
	if err != nil {
		return UpgradeReport{}, err
	}
	if err := s.waitTakeOver(ctx, pid, old, exited); err != nil {
		if old > 0 {
			writeFileAtomic(s.pidFn, []byte(strconv.Itoa(old)+"\n"), 0o600)
		}
		return UpgradeReport{}, err
	}
	rep := UpgradeReport{OldPid: old, Pid: pid, Took: time.Since(start)}
	s.pid.Store(int64(pid))
	s.exited = exited
	s.adopted = false
	// Connections pooled to the old process would reach a router that
	// refuses tables now.
	s.client.CloseIdle()
	s.log.Info("router upgraded", "pid", pid, "old_pid", old, "took", rep.Took.String())
	return rep, nil
}

// waitTakeOver waits until the new router serves the admin socket itself.
func (s *Supervisor) waitTakeOver(ctx context.Context, pid, old int, exited <-chan struct{}) error {
	deadline := time.NewTimer(s.opts.ReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-exited:
			return fmt.Errorf("the new router (pid %d) exited before it took over; the router (pid %d) keeps serving; the end of %s:\n%s",
				pid, old, s.logs, tailFile(s.logs, logTailBytes))
		case <-deadline.C:
			// Until it says ready the old router serves everything; a
			// polite stop lets the new one finish what it may have accepted.
			signalPid(pid, syscall.SIGTERM)
			return fmt.Errorf("the new router (pid %d) did not take over within %s; the router (pid %d) keeps serving; the end of %s:\n%s",
				pid, s.opts.ReadyTimeout, old, s.logs, tailFile(s.logs, logTailBytes))
		case <-ctx.Done():
			return fmt.Errorf("waiting for the new router (pid %d) to take over: %w", pid, ctx.Err())
		case <-tick.C:
			if p, err := socketPeerPID(s.sock); err == nil && p == pid {
				if _, err := s.probe(ctx); err == nil {
					return nil
				}
			}
		}
	}
}

// upgradeIfOtherBuild hands the adopted router's listeners to a router of
// Options.Command when that is another program than the router runs, so
// that upgrading bluegreen upgrades the router too, and drops nothing. A
// failure is logged and the adopted router kept.
func (s *Supervisor) upgradeIfOtherBuild(ctx context.Context) {
	exe, err := exec.LookPath(s.opts.Command[0])
	if err != nil {
		s.log.Warn("cannot tell which program runs the router", "err", err)
		return
	}
	mine, err := router.Build(exe)
	if err != nil {
		s.log.Warn("cannot tell which program runs the router", "err", err)
		return
	}
	v, err := s.client.Version(ctx)
	if err == nil && v.Build == mine {
		return
	}
	s.log.Info("the running router is another build; handing its listeners to a new one", "build", v.Build, "want", mine)
	if _, err := s.upgradeLocked(ctx); err != nil {
		s.log.Error("upgrading the adopted router failed; it keeps serving", "err", err)
	}
}
