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
	shimUp := func() bool { p.reapPID(rec.ShimPID); return alive(rec.ShimPID, rec.ShimStartTicks) }
	// A shim of one instance ends once nothing of it is left; a fleet's
	// shim says so with the exit status it writes.
	finished := func() bool { return !shimUp() }
	ask := func(req syscall.Signal) { syscall.Kill(rec.ShimPID, req) }
	if rec.ShimShared {
		finished = func() bool {
			_, exited := p.files.readExit(rec.ID)
			return exited || !shimUp()
		}
		ask = func(req syscall.Signal) { p.askFleetShim(rec, req) }
	}
	groupGone := func() bool { return !groupExists(rec.PID) }
	appUp := alive(rec.PID, rec.StartTicks)
	switch {
	case !finished():
		if appUp {
			ask(shimStop)
		}
		if waitFor(ctx, grace, finished) {
			break
		}
		ask(shimKill)
		if waitFor(context.Background(), killWait, finished) {
			break
		}
		if rec.ShimShared {
			// The fleet's other instances still need their shim: end
			// this app's group directly, having just checked that its
			// leader is still the app.
			p.log.Warn("the fleet's shim did not end the instance; killing its process group", "instance", rec.ID, "shim_pid", rec.ShimPID)
			if alive(rec.PID, rec.StartTicks) {
				syscall.Kill(-rec.PID, syscall.SIGKILL)
			}
			if !waitFor(context.Background(), killWait, groupGone) {
				return fmt.Errorf("process group %d survived SIGKILL", rec.PID)
			}
			break
		}
		// A shim that does not end after its app was killed is broken:
		// kill it, and the app (Pdeathsig would too) if it is still there.
		p.log.Warn("instance shim did not exit; killing it", "instance", rec.ID, "shim_pid", rec.ShimPID)
		syscall.Kill(rec.ShimPID, syscall.SIGKILL)
		if alive(rec.PID, rec.StartTicks) {
			syscall.Kill(-rec.PID, syscall.SIGKILL)
		}
		if !waitFor(context.Background(), killWait, func() bool { return !shimUp() }) {
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

// askFleetShim relays a stop (shimStop) or kill (shimKill) request for rec
// to its fleet's shim. A shim that cannot be asked is left to the waits
// that follow.
func (p *Platform) askFleetShim(rec record, req syscall.Signal) {
	ctx, cancel := context.WithTimeout(context.Background(), killWait)
	defer cancel()
	r := shimRequest{Stop: rec.ID}
	if req == shimKill {
		r = shimRequest{Kill: rec.ID}
	}
	var answer shimAnswer
	err := askShim(ctx, rec.ShimPID, rec.ShimStartTicks, r, &answer)
	if err == nil && answer.Error != "" {
		err = errors.New(answer.Error)
	}
	if err != nil {
		p.log.Warn("asking the fleet's shim", "instance", rec.ID, "shim_pid", rec.ShimPID, "err", err)
	}
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
