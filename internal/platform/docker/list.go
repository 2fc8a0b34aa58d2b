package docker

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"bluegreen/internal/platform"
)

// Labels on every container this platform creates. Everything a restarted
// server needs to adopt a container is in them; nothing is kept only in
// memory.
const (
	labelOwner       = "io.bluegreen.owner"
	labelApp         = "io.bluegreen.app"
	labelRevision    = "io.bluegreen.revision"
	labelFleet       = "io.bluegreen.fleet"
	labelIndex       = "io.bluegreen.index"
	labelService     = "io.bluegreen.service"
	labelInstance    = "io.bluegreen.instance"
	labelHost        = "io.bluegreen.host"
	labelPort        = "io.bluegreen.port"
	labelImage       = "io.bluegreen.image" // the reference the revision pinned
	labelImageID     = "io.bluegreen.image-id"
	labelStopSignal  = "io.bluegreen.stop-signal"
	labelStopTimeout = "io.bluegreen.stop-timeout"
)

// containerName is the container's name on the engine: the instance ID,
// prefixed with a short form of the owner so that two servers launching the
// same ID on one engine do not clash.
func (p *Platform) containerName(id string) string {
	return "bg-" + p.tag + "-" + id
}

// inspect returns the container of instance id, if this owner has one.
func (p *Platform) inspect(ctx context.Context, id string) (container.InspectResponse, bool, error) {
	cctx, cancel := p.call(ctx)
	defer cancel()
	res, err := p.cli.ContainerInspect(cctx, p.containerName(id), client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return container.InspectResponse{}, false, nil
	}
	if err != nil {
		return container.InspectResponse{}, false, p.engineErr(cctx, "inspecting the container of instance "+id, err)
	}
	c := res.Container
	if c.Config == nil || c.Config.Labels[labelOwner] != p.opts.Owner || c.State == nil {
		// Another owner's container with the same short owner form: not ours.
		return container.InspectResponse{}, false, nil
	}
	return c, true, nil
}

// running reports whether the container runs (a paused or restarting one
// still holds its instance).
func running(c container.InspectResponse) bool {
	return c.State.Running || c.State.Restarting || c.State.Paused
}

// instance describes a container as the engine sees the instance.
func (p *Platform) instance(c container.InspectResponse) platform.Instance {
	l := c.Config.Labels
	rev, _ := strconv.ParseInt(l[labelRevision], 10, 64)
	index, _ := strconv.Atoi(l[labelIndex])
	in := platform.Instance{
		ID: l[labelInstance], App: l[labelApp], Revision: rev, Fleet: l[labelFleet], Service: l[labelService], Index: index,
		Address: net.JoinHostPort(l[labelHost], l[labelPort]),
		State:   platform.StateRunning, PID: c.State.Pid,
		Platform: p.Name(), Container: c.ID,
		Detail: fmt.Sprintf("container %.12s, image %s (%.19s)", c.ID, l[labelImage], l[labelImageID]),
	}
	if t, err := time.Parse(time.RFC3339Nano, c.State.StartedAt); err == nil && t.Year() > 1 {
		in.StartedAt = t
	}
	if !running(c) {
		in.State, in.PID, in.ExitCode = platform.StateExited, 0, c.State.ExitCode
		if in.StartedAt.IsZero() && c.State.ExitCode == 0 {
			in.ExitCode = -1 // created, never started: no code to tell
		}
	}
	return in
}

// ownerFilter selects this owner's containers (of app, unless "").
func (p *Platform) ownerFilter(app string) client.Filters {
	f := make(client.Filters).Add("label", labelOwner+"="+p.opts.Owner)
	if app != "" {
		f.Add("label", labelApp+"="+app)
	}
	return f
}

// List returns this owner's containers of app (all apps when app is ""),
// running and exited, ordered by instance ID. A container whose Launch is
// still in progress here is left out until it runs.
func (p *Platform) List(ctx context.Context, app string) ([]platform.Instance, error) {
	cctx, cancel := p.call(ctx)
	defer cancel()
	res, err := p.cli.ContainerList(cctx, client.ContainerListOptions{All: true, Filters: p.ownerFilter(app)})
	if err != nil {
		return nil, p.engineErr(cctx, "listing containers", err)
	}
	out := []platform.Instance{}
	for _, s := range res.Items {
		id := s.Labels[labelInstance]
		if id == "" || p.isLaunching(id) {
			continue
		}
		c, ok, err := p.inspect(ctx, id)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // removed meanwhile
		}
		out = append(out, p.instance(c))
	}
	slices.SortFunc(out, func(a, b platform.Instance) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

func (p *Platform) isLaunching(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.launching[id]
}

// usedPorts returns the ports held by the containers of every owner on the
// engine that are running or about to: on the host's network they all
// share the ports of Host.
func (p *Platform) usedPorts(ctx context.Context) (map[int]bool, error) {
	cctx, cancel := p.call(ctx)
	defer cancel()
	res, err := p.cli.ContainerList(cctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", labelPort).Add("status", "created", "running", "restarting", "paused"),
	})
	if err != nil {
		return nil, p.engineErr(cctx, "listing the ports of containers", err)
	}
	used := map[int]bool{}
	for _, s := range res.Items {
		if port, err := strconv.Atoi(s.Labels[labelPort]); err == nil {
			used[port] = true
		}
	}
	return used, nil
}
