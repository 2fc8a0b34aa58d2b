package process

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"time"
)

// killWait bounds each wait for processes that were sent SIGKILL.
const killWait = 10 * time.Second

// Stop asks the instance's shim to send the instance's stop signal to the
// app's process group, waits up to grace for the shim to report everything
// gone, then has the group killed. The shim itself ends only after the
// app's last descendant is dead and its output is in the log, so "the shim
// is gone" means "nothing of the instance is left". The record is removed;
// the log files stay until RemoveLogs. A negative grace means the
// StopTimeout the instance was launched with. An unknown ID is not an error.
func (p *Platform) Stop(ctx context.Context, id string, grace time.Duration) error {
	if checkID(id) != nil {
		return nil // no such instance can exist
	}
	unlock := p.lockID(id)
	defer unlock()
	defer p.track(id)
	rec, err := p.files.readRecord(id)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stopping instance %s: %w", id, err)
	}
	if grace < 0 {
		grace = rec.StopTimeout
	}
	if err := p.stopRecord(ctx, rec, grace); err != nil {
		return fmt.Errorf("stopping instance %s: %w", id, err)
	}
	p.log.Info("stopped instance", "instance", id, "pid", rec.PID)
	return nil
}

// stopRecord ends whatever is left of rec's instance and forgets it. If ctx
// ends during the grace period, the instance is killed at once.
func (p *Platform) stopRecord(ctx context.Context, rec record, grace time.Duration) error {
	shimGone := func() bool { p.reapPID(rec.ShimPID); return !alive(rec.ShimPID, rec.ShimStartTicks) }
	groupGone := func() bool { return !groupExists(rec.PID) }
	appUp := alive(rec.PID, rec.StartTicks)
	switch {
	case !shimGone():
		if appUp {
			syscall.Kill(rec.ShimPID, shimStop)
		}
		if waitFor(ctx, grace, shimGone) {
			break
		}
		syscall.Kill(rec.ShimPID, shimKill)
		if waitFor(context.Background(), killWait, shimGone) {
			break
		}
		// A shim that does not end after its app was killed is broken:
		// kill it, and the app (Pdeathsig would too) if it is still there.
		p.log.Warn("instance shim did not exit; killing it", "instance", rec.ID, "shim_pid", rec.ShimPID)
		syscall.Kill(rec.ShimPID, syscall.SIGKILL)
		if alive(rec.PID, rec.StartTicks) {
			syscall.Kill(-rec.PID, syscall.SIGKILL)
		}
		if !waitFor(context.Background(), killWait, shimGone) {
			return fmt.Errorf("shim %d survived SIGKILL", rec.ShimPID)
		}
	case appUp:
		// Someone killed the shim and the app survived it: without the shim
		// to ask, signal the group directly, having just checked that its
		// leader is still the app.
		p.log.Warn("instance shim is gone; signalling the app directly", "instance", rec.ID, "pid", rec.PID)
		syscall.Kill(-rec.PID, signalByName(rec.StopSignal))
		if !waitFor(ctx, grace, groupGone) {
			syscall.Kill(-rec.PID, syscall.SIGKILL)
			if !waitFor(context.Background(), killWait, groupGone) {
				return fmt.Errorf("process group %d survived SIGKILL", rec.PID)
			}
		}
	}
	p.finishTailer(rec.ID)
	if err := p.files.forget(rec.ID); err != nil {
		return fmt.Errorf("removing the record: %w", err)
	}
	return nil
}

// waitFor polls cond until it holds (true), d has passed or ctx has ended
// (false). The processes it waits for are not this one's children, so there
// is nothing to block on.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return cond()
		case <-tick.C:
		}
	}
}
