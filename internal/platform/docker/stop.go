package docker

import (
	"context"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"bluegreen/internal/platform"
)

// Stop sends the instance's stop signal (the one its spec named at launch,
// kept in a label), waits up to grace for the container to exit, kills it
// if it has not, and removes it with its logs. A negative grace means the
// StopTimeout the instance was launched with; if ctx ends during the grace
// period, the container is removed at once. An unknown ID, or a container
// of another owner, is not an error.
func (p *Platform) Stop(ctx context.Context, id string, grace time.Duration) error {
	if platform.CheckID(id) != nil {
		return nil
	}
	unlock := p.locks.Lock(id)
	defer unlock()
	c, ok, err := p.inspect(ctx, id)
	if err != nil {
		return fmt.Errorf("stopping instance %s: %w", id, err)
	}
	if !ok {
		return nil
	}
	if grace < 0 {
		grace, _ = time.ParseDuration(c.Config.Labels[labelStopTimeout])
	}
	if running(c) && grace > 0 {
		sig := c.Config.Labels[labelStopSignal]
		if sig == "" {
			sig = "SIGTERM"
		}
		if err := p.signal(ctx, c.ID, sig); err != nil {
			return fmt.Errorf("stopping instance %s: %w", id, err)
		}
		if sig != "SIGKILL" {
			p.waitExit(ctx, c.ID, grace)
		}
	}
	// Removing with force kills what still runs; it is done even when ctx
	// ended during the grace period, as a process is killed then too.
	if err := p.remove(context.WithoutCancel(ctx), c.ID); err != nil {
		return fmt.Errorf("stopping instance %s: %w", id, err)
	}
	p.log.Info("stopped instance", "instance", id, "container", c.ID)
	return nil
}

// signal sends sig to the container's init; a container that is no longer
// running is not an error.
func (p *Platform) signal(ctx context.Context, containerID, sig string) error {
	cctx, cancel := p.call(ctx)
	defer cancel()
	_, err := p.cli.ContainerKill(cctx, containerID, client.ContainerKillOptions{Signal: sig})
	if err != nil && !cerrdefs.IsConflict(err) && !cerrdefs.IsNotFound(err) {
		return p.engineErr(cctx, "sending "+sig+" to container "+containerID, err)
	}
	return nil
}

// waitExit waits until the container is no longer running, or grace has
// passed, or ctx ends.
func (p *Platform) waitExit(ctx context.Context, containerID string, grace time.Duration) {
	wctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	w := p.cli.ContainerWait(wctx, containerID, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case <-w.Result:
	case <-w.Error:
	case <-wctx.Done():
	}
}
