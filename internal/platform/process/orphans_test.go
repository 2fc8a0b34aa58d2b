package process

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/platformtest"
)

// forkScript starts a plain child, a setsid'd child and a double-forked
// grandchild (setsid'd too), each writing its PID to "pids", then prelude
// decides how the app itself behaves. "$$$$" is the shell's "$$" once
// bluegreen has expanded the command.
const forkScript = `echo $$$$ >> pids
sleep 1000 & echo $! >> pids
setsid sh -c 'echo $$$$ >> pids; exec sleep 1000' &
( setsid sh -c 'echo $$$$ >> pids; exec sleep 1000' & )
( sh -c 'echo $$$$ >> pids; exec sleep 1000' & )
`

// shimModes are the two ways of watching instances: a shim each, or a
// shim per fleet.
var shimModes = []struct {
	name     string
	perFleet bool
}{{"shim per instance", false}, {"shim per fleet", true}}

func TestStopLeavesNoOrphans(t *testing.T) {
	for _, mode := range shimModes {
		for _, tc := range []struct {
			name, prelude string
			grace         time.Duration
			minTook       time.Duration
		}{
			{"graceful", "", 10 * time.Second, 0},
			{"ignores SIGTERM", "trap '' TERM\n", 300 * time.Millisecond, 300 * time.Millisecond},
		} {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				opts := testOptions(t.TempDir())
				opts.ShimPerFleet = mode.perFleet
				p := newTestPlatform(t, opts)
				dir := t.TempDir()
				in := launch(t, p, shSpec("forks-0", dir, tc.prelude+forkScript+"echo ready\nwait\n"))
				pidfile := filepath.Join(dir, "pids")
				platformtest.Eventually(t, 10*time.Second, func() string {
					if n := len(readPids(pidfile)); n < 5 {
						return fmt.Sprintf("%d of 5 processes started; output:\n%s", n, readLogs(t, p, in.ID, 0))
					}
					return ""
				})
				waitLogs(t, p, in.ID, "ready")
				start := time.Now()
				if err := p.Stop(testCtx(t), in.ID, tc.grace); err != nil {
					t.Fatal(err)
				}
				if took := time.Since(start); took < tc.minTook {
					t.Errorf("Stop took %v, before the grace of %v was over", took, tc.grace)
				}
				checkAllGone(t, in.PID, readPids(pidfile))
			})
		}
	}
}

func TestExitKillsLeftovers(t *testing.T) {
	for _, mode := range shimModes {
		t.Run(mode.name, func(t *testing.T) {
			opts := testOptions(t.TempDir())
			opts.ShimPerFleet = mode.perFleet
			p := newTestPlatform(t, opts)
			dir := t.TempDir()
			in := launch(t, p, shSpec("leftovers-0", dir, forkScript+"while [ $(wc -l < pids) -lt 5 ]; do sleep 0.01; done\nexit 3\n"))
			platformtest.Eventually(t, 10*time.Second, func() string {
				got, _ := findInstance(t, p, in.ID)
				if got.State != platform.StateExited || got.ExitCode != 3 {
					return fmt.Sprintf("instance is %+v, want exited with code 3", got)
				}
				return ""
			})
			checkAllGone(t, in.PID, readPids(filepath.Join(dir, "pids")))
		})
	}
}

// checkAllGone fails unless every PID and every member of the app's process
// group is gone.
func checkAllGone(t *testing.T, pgid int, pids []int) {
	t.Helper()
	if len(pids) < 5 {
		t.Fatalf("only %d PIDs recorded: %v", len(pids), pids)
	}
	for _, pid := range pids {
		if pidAlive(pid) {
			t.Errorf("process %d outlived its instance", pid)
		}
	}
	if m := groupMembers(pgid); len(m) > 0 {
		t.Errorf("processes %v are still in the instance's group %d", m, pgid)
	}
}
