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

// runSpec fills the platform's part of an instance spec: the working
// directory of a process, or the container of an image. env holds the
// revision's pinned params.
func runSpec(rev *revision, env params.Env, is *platform.InstanceSpec) error {
	s := rev.Spec
	is.Platform = s.Platform
	switch s.Platform {
	case spec.PlatformDocker:
		if rev.Image == nil {
			return &PermanentError{Err: fmt.Errorf("revision %d of app %s runs an image but pinned none", rev.Generation, rev.App)}
		}
		c, err := containerOf(s, env)
		if err != nil {
			return &PermanentError{Err: fmt.Errorf("revision %d of app %s: %w", rev.Generation, rev.App, err)}
		}
		c.Image = platform.Image{Ref: rev.Image.Ref, ID: rev.Image.ID, Digest: rev.Image.Digest}
		is.Container = c
	case spec.PlatformKubernetes:
		if rev.Image == nil {
			return &PermanentError{Err: fmt.Errorf("revision %d of app %s runs an image but pinned none", rev.Generation, rev.App)}
		}
		k := s.Kubernetes
		is.Container = &platform.Container{
			Image:     platform.Image{Ref: rev.Image.Ref, ID: rev.Image.ID, Digest: rev.Image.Digest},
			Pull:      k.Pull,
			Namespace: k.Namespace,
		}
	default:
		is.WorkDir = s.Process.Dir
	}
	return nil
}

// serverParams are the params a spec names for the server's own use (a
// registry password, a webhook's secret or URL): the app's instances never
// see them, although the revision pins them like the others.
func serverParams(s *spec.Spec) []string {
	var out []string
	if s.Docker != nil && s.Docker.Auth != nil {
		out = append(out, s.Docker.Auth.PasswordParam)
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

// containerOf reads the docker section; the image is the revision's.
func containerOf(s *spec.Spec, env params.Env) (*platform.Container, error) {
	d := s.Docker
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
	auth, err := registryAuth(s, env)
	if err != nil {
		return nil, err
	}
	c.Auth = auth
	return c, nil
}

// registryAuth is the registry login the docker section names, with its
// password read from the pinned params.
func registryAuth(s *spec.Spec, env params.Env) (*platform.RegistryAuth, error) {
	if s.Docker == nil || s.Docker.Auth == nil {
		return nil, nil
	}
	a := s.Docker.Auth
	v, ok := env[params.EnvName(a.PasswordParam)]
	if !ok {
		return nil, fmt.Errorf("docker.auth.password_param %s is not among the revision's pinned params", a.PasswordParam)
	}
	return &platform.RegistryAuth{Username: a.Username, Password: v.Reveal()}, nil
}

// pinImage resolves the image a new revision names to its ID (pulling it
// when the spec's pull policy says so), with the registry login from the
// params the revision pins. Specs of processes pin nothing.
func (e *Engine) pinImage(ctx context.Context, s *spec.Spec, pins map[string]int64) (*store.Image, error) {
	ref, pull := s.ImageRef()
	if ref == "" {
		return nil, nil
	}
	p, ok := e.plat.Get(s.Platform)
	if !ok {
		return nil, fmt.Errorf("app %s: platform %s is not available on this server", s.App, s.Platform)
	}
	r, ok := p.(platform.ImageResolver)
	if !ok {
		return nil, fmt.Errorf("app %s: platform %s cannot resolve images", s.App, s.Platform)
	}
	env, err := e.opts.Params.Resolve(ctx, pins)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", s.App, err)
	}
	auth, err := registryAuth(s, env)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", s.App, err)
	}
	img, err := r.Resolve(ctx, ref, pull, auth)
	if err != nil {
		return nil, &ImageError{App: s.App, Err: err}
	}
	return &store.Image{Ref: img.Ref, ID: img.ID, Digest: img.Digest}, nil
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
