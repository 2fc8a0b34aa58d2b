package docker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/instanceenv"
)

// stopSignals are the signals a spec may name to stop an instance.
var stopSignals = []string{"SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGKILL"}

// Launch starts the instance's container, or returns it if it is already
// running. A container of the ID that has exited (or never started) is
// removed and replaced, possibly on another port. Launch returns once the
// container has started, not once the app is healthy.
func (p *Platform) Launch(ctx context.Context, s platform.InstanceSpec) (platform.Instance, error) {
	if err := platform.CheckID(s.ID); err != nil {
		return platform.Instance{}, fmt.Errorf("launching instance: %w", err)
	}
	unlock := p.locks.Lock(s.ID)
	defer unlock()
	p.mu.Lock()
	p.launching[s.ID] = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.launching, s.ID)
		p.mu.Unlock()
	}()

	c, ok, err := p.inspect(ctx, s.ID)
	if err != nil {
		return platform.Instance{}, fmt.Errorf("launching instance %s: %w", s.ID, err)
	}
	if ok && running(c) {
		return p.instance(c), nil
	}
	if ok {
		if err := p.remove(ctx, c.ID); err != nil {
			return platform.Instance{}, fmt.Errorf("launching instance %s: removing the exited container: %w", s.ID, err)
		}
	}
	in, err := p.start(ctx, s)
	if err != nil {
		return platform.Instance{}, fmt.Errorf("launching instance %s: %w", s.ID, err)
	}
	p.log.Info("launched instance", "instance", s.ID, "container", in.Detail, "pid", in.PID, "address", in.Address)
	return in, nil
}

// start creates and starts the container.
func (p *Platform) start(ctx context.Context, s platform.InstanceSpec) (platform.Instance, error) {
	ct := s.Container
	if ct == nil {
		return platform.Instance{}, errors.New("the spec has no container settings: the docker platform runs images")
	}
	if ct.Image.ID == "" {
		return platform.Instance{}, fmt.Errorf("image %s was not pinned to an ID", ct.Image.Ref)
	}
	stopSignal := s.StopSignal
	if stopSignal == "" {
		stopSignal = "SIGTERM"
	}
	if !slices.Contains(stopSignals, stopSignal) {
		return platform.Instance{}, fmt.Errorf("unknown stop signal %q", s.StopSignal)
	}
	mounts, err := mountsOf(s.Dir, ct)
	if err != nil {
		return platform.Instance{}, err
	}
	if err := p.ensureImage(ctx, ct); err != nil {
		return platform.Instance{}, err
	}
	used, err := p.usedPorts(ctx)
	if err != nil {
		return platform.Instance{}, err
	}
	port, release, err := p.ports.Allocate(used)
	if err != nil {
		return platform.Instance{}, err
	}
	defer release() // by then the container holds the port in its labels
	x := instanceenv.New(s, port, os.LookupEnv)
	cmd, err := x.Args("command", s.Command)
	if err != nil {
		return platform.Instance{}, err
	}
	entrypoint, err := x.Args("entrypoint", ct.Entrypoint)
	if err != nil {
		return platform.Instance{}, err
	}
	env, err := x.Environment(nil)
	if err != nil {
		return platform.Instance{}, err
	}

	cfg := &container.Config{
		Image:       ct.Image.ID,
		Cmd:         cmd,
		Entrypoint:  entrypoint,
		Env:         instanceenv.List(env),
		User:        userOf(s),
		WorkingDir:  ct.WorkDir,
		StopSignal:  stopSignal,
		StopTimeout: stopTimeout(s.StopTimeout),
		Labels: map[string]string{
			labelOwner: p.opts.Owner, labelApp: s.App, labelRevision: strconv.FormatInt(s.Revision, 10),
			labelFleet: s.Fleet, labelIndex: strconv.Itoa(s.Index), labelInstance: s.ID,
			labelHost: p.opts.Host, labelPort: strconv.Itoa(port),
			labelImage: ct.Image.Ref, labelImageID: ct.Image.ID,
			labelStopSignal: stopSignal, labelStopTimeout: s.StopTimeout.String(),
		},
	}
	if s.Service != "" {
		cfg.Labels[labelService] = s.Service
	}
	init := true
	host := &container.HostConfig{
		NetworkMode:   "host",
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{
			"max-size": strconv.FormatInt(p.opts.LogMaxBytes, 10), "max-file": strconv.Itoa(p.opts.LogFiles),
		}},
		// The engine's init is PID 1: it passes the stop signal on to the
		// app, which then meets its default action as a process would, and
		// reaps what the app leaves behind.
		Init:        &init,
		SecurityOpt: []string{"no-new-privileges:true"},
		Resources:   container.Resources{Memory: ct.MemoryBytes, NanoCPUs: ct.NanoCPUs},
		Mounts:      mounts,
		GroupAdd:    groupsOf(s),
	}
	name := p.containerName(s.ID)
	cctx, cancel := p.call(ctx)
	defer cancel()
	created, err := p.cli.ContainerCreate(cctx, client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: host})
	if cerrdefs.IsConflict(err) {
		// Another Platform value of this owner (a server that was
		// restarted while this one launched) created it first.
		if c, ok, ierr := p.inspect(ctx, s.ID); ierr == nil && ok && running(c) {
			return p.instance(c), nil
		}
	}
	if err != nil {
		return platform.Instance{}, p.engineErr(cctx, "creating container "+name, err)
	}
	if _, err := p.cli.ContainerStart(cctx, created.ID, client.ContainerStartOptions{}); err != nil {
		err = p.engineErr(cctx, "starting container "+name, err)
		if rmErr := p.remove(ctx, created.ID); rmErr != nil {
			p.log.Warn("removing a container that did not start", "instance", s.ID, "err", rmErr)
		}
		return platform.Instance{}, err
	}
	c, ok, err := p.inspect(ctx, s.ID)
	if err != nil {
		return platform.Instance{}, err
	}
	if !ok {
		return platform.Instance{}, fmt.Errorf("container %s was removed as it started", name)
	}
	return p.instance(c), nil
}

// userOf is who the container runs as: the spec's container user, else
// the instance's user by number (a user name of the host may not exist in
// the image), else the image's default.
func userOf(s platform.InstanceSpec) string {
	if s.Container.User != "" {
		return s.Container.User
	}
	if s.User != nil {
		return fmt.Sprintf("%d:%d", s.User.UID, s.User.GID)
	}
	return ""
}

// groupsOf are the supplementary groups of the instance's user, when the
// container runs as that user.
func groupsOf(s platform.InstanceSpec) []string {
	if s.Container.User != "" || s.User == nil {
		return nil
	}
	var out []string
	for _, g := range s.User.Groups {
		out = append(out, strconv.FormatUint(uint64(g), 10))
	}
	return out
}

// stopTimeout is the engine's own stop timeout in whole seconds (used by
// `docker stop` and the engine's shutdown; Stop keeps its own time).
func stopTimeout(d time.Duration) *int {
	if d <= 0 {
		return nil
	}
	s := int(math.Ceil(d.Seconds()))
	return &s
}

// remove removes a container and whatever it still runs.
func (p *Platform) remove(ctx context.Context, id string) error {
	cctx, cancel := p.call(ctx)
	defer cancel()
	_, err := p.cli.ContainerRemove(cctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return p.engineErr(cctx, "removing container "+id, err)
	}
	return nil
}
