package engine

import (
	"context"

	"fmt"
	"strings"

	"bluegreen/internal/params"
	"bluegreen/internal/platform"
	"bluegreen/internal/spec"
	"bluegreen/internal/store"
)

// This file is where a spec's platform section becomes what a platform
// runs: everything else in the engine reads the platform-neutral
// spec.Workload.

// runSpec fills the platform's part of an instance spec of service m of
// rev: the working directory of a process, or the container of an image.
// env holds the revision's pinned params, urls the addresses of a stack's
// services for the instance's fleet.
func runSpec(rev *revision, m spec.Member, env params.Env, urls map[string]string, is *platform.InstanceSpec) error {
	is.Platform = m.Platform
	switch m.Platform {
	case spec.PlatformDocker:
		img, ok := rev.imageOf(m.Name)
		if !ok {
			return &PermanentError{Err: fmt.Errorf("revision %d of app %s runs an image but pinned none", rev.Generation, rev.App)}
		}
		c, err := containerOf(rev.Spec, m.Docker, env)
		if err != nil {
			return &PermanentError{Err: fmt.Errorf("revision %d of app %s: %w", rev.Generation, rev.App, err)}
		}
		c.Image = platform.Image{Ref: img.Ref, ID: img.ID, Digest: img.Digest}
		if len(urls) > 0 {
			c.Entrypoint, _ = expandServices(c.Entrypoint, nil, urls)
		}
		is.Container = c
	default:
		is.WorkDir = m.Process.Dir
	}
	return nil
}

// serverParams are the params a spec names for the server's own use (a
// registry password of any of its services, a webhook's secret or URL):
// the app's instances never see them, although the revision pins them like
// the others.
func serverParams(s *spec.Spec) []string {
	var out []string
	for _, m := range s.Members() {
		if m.Docker != nil && m.Docker.Auth != nil {
			out = append(out, m.Docker.Auth.PasswordParam)
		}
	}
	for _, n := range s.Notifications {
		for _, p := range []string{n.SecretParam, n.URLParam} {
			if p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// containerOf reads a docker section of s; the image is the revision's.
func containerOf(s *spec.Spec, d *spec.Docker, env params.Env) (*platform.Container, error) {
	c := &platform.Container{
		Entrypoint: d.Entrypoint, User: d.User, WorkDir: d.Workdir,
		MemoryBytes: d.MemoryBytes(), NanoCPUs: d.NanoCPUs(), Pull: d.Pull,
	}
	for _, v := range d.Mounts() {
		c.Volumes = append(c.Volumes, platform.Volume{Source: v.Source, Target: v.Target})
	}
	for _, t := range d.TmpfsMounts() {
		c.Tmpfs = append(c.Tmpfs, platform.Tmpfs{Target: t.Target, SizeBytes: t.SizeBytes})
	}
	auth, err := registryAuth(d, env)
	if err != nil {
		return nil, err
	}
	c.Auth = auth
	return c, nil
}

// registryAuth is the registry login a docker section names, with its
// password read from the pinned params.
func registryAuth(d *spec.Docker, env params.Env) (*platform.RegistryAuth, error) {
	a := d.Auth
	if a == nil {
		return nil, nil
	}
	v, ok := env[params.EnvName(a.PasswordParam)]
	if !ok {
		return nil, fmt.Errorf("docker.auth.password_param %s is not among the revision's pinned params", a.PasswordParam)
	}
	return &platform.RegistryAuth{Username: a.Username, Password: v.Reveal()}, nil
}

// pinImage resolves the image a new revision names to its ID (pulling it
// when the spec's pull policy says so), with the registry login from the
// params the revision pins. Specs of processes pin nothing; a stack pins
// one image per service of containers, in Image.Services.
func (e *Engine) pinImage(ctx context.Context, s *spec.Spec, pins map[string]int64) (*store.Image, error) {
	var out *store.Image
	for _, m := range s.Members() {
		if m.Platform != spec.PlatformDocker || m.Docker == nil {
			continue
		}
		img, err := e.pinMemberImage(ctx, s, m.Docker, pins)
		if err != nil {
			return nil, err
		}
		if m.Name == "" {
			return img, nil
		}
		if out == nil {
			out = &store.Image{Services: map[string]store.Image{}}
		}
		out.Services[m.Name] = *img
	}
	return out, nil
}

// pinMemberImage resolves the image of one docker section.
func (e *Engine) pinMemberImage(ctx context.Context, s *spec.Spec, d *spec.Docker, pins map[string]int64) (*store.Image, error) {
	p, ok := e.plat.Get(spec.PlatformDocker)
	if !ok {
		return nil, fmt.Errorf("app %s: platform %s is not available on this server", s.App, spec.PlatformDocker)
	}
	r, ok := p.(platform.ImageResolver)
	if !ok {
		return nil, fmt.Errorf("app %s: platform %s cannot resolve images", s.App, spec.PlatformDocker)
	}
	env, err := e.opts.Params.Resolve(ctx, pins)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", s.App, err)
	}
	auth, err := registryAuth(d, env)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", s.App, err)
	}
	img, err := r.Resolve(ctx, d.Image, d.Pull, auth)
	if err != nil {
		return nil, &ImageError{App: s.App, Err: err}
	}
	return &store.Image{Ref: img.Ref, ID: img.ID, Digest: img.Digest}, nil
}

// imageOf is the image the revision pinned for service m ("" for an app
// of one service).
func (r *revision) imageOf(m string) (store.Image, bool) {
	if r.Image == nil {
		return store.Image{}, false
	}
	if m == "" {
		return *r.Image, r.Image.ID != ""
	}
	img, ok := r.Image.Services[m]
	return img, ok
}

// ImageError is an image a new revision names that cannot be resolved:
// the request is wrong (or the registry refuses it), not the server.
type ImageError struct {
	App string
	Err error
}

func (e *ImageError) Error() string { return fmt.Sprintf("app %s: %v", e.App, e.Err) }
func (e *ImageError) Unwrap() error { return e.Err }

// shortID is an image ID as people see it: the first 12 hex digits.
func shortID(id string) string {
	h := strings.TrimPrefix(id, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}
