package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/docker/scratch"
)

// Resolve finds the image ref names on the engine, pulling it first when
// pull says so (PullAlways; PullMissing, the default, when the engine lacks
// it; never for PullNever), and pins it: its ID, and the digest the
// registry knows it by when it came from one.
func (p *Platform) Resolve(ctx context.Context, ref, pull string, auth *platform.RegistryAuth) (platform.Image, error) {
	named, err := parseRef(ref)
	if err != nil {
		return platform.Image{}, err
	}
	switch pull {
	case "":
		pull = platform.PullMissing
	case platform.PullMissing, platform.PullAlways, platform.PullNever:
	default:
		return platform.Image{}, fmt.Errorf("image %s: unknown pull policy %q (want %s, %s or %s)", ref, pull, platform.PullMissing, platform.PullAlways, platform.PullNever)
	}
	if pull == platform.PullAlways {
		if err := p.pull(ctx, ref, auth); err != nil {
			return platform.Image{}, err
		}
	}
	img, ok, err := p.inspectImage(ctx, ref)
	if err != nil {
		return platform.Image{}, err
	}
	if !ok && pull == platform.PullMissing {
		if err := p.pull(ctx, ref, auth); err != nil {
			return platform.Image{}, err
		}
		img, ok, err = p.inspectImage(ctx, ref)
		if err != nil {
			return platform.Image{}, err
		}
	}
	if !ok {
		how := "pull: never"
		if pull != platform.PullNever {
			how = "even after a pull"
		}
		return platform.Image{}, kindErrorf(ErrImage, "image %s is not on the docker engine at %s (%s)", ref, p.host, how)
	}
	return platform.Image{Ref: ref, ID: img.ID, Digest: repoDigest(named, img.RepoDigests)}, nil
}

// parseRef checks a reference the way the engine reads it.
func parseRef(ref string) (reference.Named, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, kindErrorf(ErrImage, "image reference %q is malformed: %v", ref, err)
	}
	return named, nil
}

// repoDigest is the entry of digests ("127.0.0.1:5000/shop@sha256:…") for
// named's repository, or "" when the image did not come from it.
func repoDigest(named reference.Named, digests []string) string {
	for _, d := range digests {
		if n, err := reference.ParseNormalizedNamed(d); err == nil && n.Name() == named.Name() {
			return d
		}
	}
	return ""
}

// inspectImage returns the image ref names (a reference or an ID), and
// false when the engine does not have it.
func (p *Platform) inspectImage(ctx context.Context, ref string) (image.InspectResponse, bool, error) {
	cctx, cancel := p.call(ctx)
	defer cancel()
	res, err := p.cli.ImageInspect(cctx, ref)
	if cerrdefs.IsNotFound(err) {
		return image.InspectResponse{}, false, nil
	}
	if err != nil {
		return image.InspectResponse{}, false, p.engineErr(cctx, "inspecting image "+ref, err)
	}
	return res.InspectResponse, true, nil
}

// ensureImage makes sure the engine has the image a revision pinned: when
// it lacks the ID, the image is pulled by its digest (else its reference)
// unless the spec says never, and must then have that ID.
func (p *Platform) ensureImage(ctx context.Context, ct *platform.Container) error {
	_, ok, err := p.inspectImage(ctx, ct.Image.ID)
	if err != nil || ok {
		return err
	}
	pinned := fmt.Sprintf("image %s (%s)", ct.Image.Ref, ct.Image.ID)
	if ct.Pull == platform.PullNever {
		return kindErrorf(ErrImage, "%s is not on the docker engine at %s, and pull is never", pinned, p.host)
	}
	ref := ct.Image.Digest
	if ref == "" {
		ref = ct.Image.Ref
	}
	if _, err := parseRef(ref); err != nil {
		return err
	}
	if err := p.pull(ctx, ref, ct.Auth); err != nil {
		return fmt.Errorf("%s is not on the engine: %w", pinned, err)
	}
	img, ok, err := p.inspectImage(ctx, ref)
	if err != nil {
		return err
	}
	if !ok || img.ID != ct.Image.ID {
		return kindErrorf(ErrImage, "%s is not on the docker engine at %s, and %s is now another image (%s)", pinned, p.host, ref, img.ID)
	}
	return nil
}

// pull fetches ref from its registry, with auth when given, and turns the
// registry's refusals into messages a person can act on.
func (p *Platform) pull(ctx context.Context, ref string, auth *platform.RegistryAuth) error {
	named, err := parseRef(ref)
	if err != nil {
		return err
	}
	opts := client.ImagePullOptions{}
	if auth != nil {
		enc, err := authconfig.Encode(registry.AuthConfig{
			Username: auth.Username, Password: auth.Password, ServerAddress: reference.Domain(named),
		})
		if err != nil {
			return err
		}
		opts.RegistryAuth = enc
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.PullTimeout)
	defer cancel()
	p.log.Info("pulling image", "image", ref)
	res, err := p.cli.ImagePull(ctx, ref, opts)
	if err == nil {
		err = res.Wait(ctx)
		res.Close()
	}
	if err != nil {
		return p.pullErr(ctx, ref, named, err)
	}
	return nil
}

// pullErr explains why a pull failed.
func (p *Platform) pullErr(ctx context.Context, ref string, named reference.Named, err error) error {
	doing := "pulling image " + ref
	if client.IsErrConnectionFailed(err) || (errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil) {
		return p.engineErr(ctx, doing, err)
	}
	msg := daemonMessage(err)
	low := strings.ToLower(msg)
	registryHost := reference.Domain(named)
	switch {
	case cerrdefs.IsUnauthorized(err) || strings.Contains(low, "unauthorized") || strings.Contains(low, "authentication required") || strings.Contains(low, "no basic auth credentials"):
		return kindErrorf(ErrImage, "%s: the registry %s refused the credentials (%s)", doing, registryHost, msg)
	case strings.Contains(low, "manifest unknown") || strings.Contains(low, "not found") || cerrdefs.IsNotFound(err):
		return kindErrorf(ErrImage, "%s: the registry %s has no such image or tag (%s)", doing, registryHost, msg)
	case strings.Contains(low, "connection refused") || strings.Contains(low, "no such host") || strings.Contains(low, "i/o timeout"):
		return kindErrorf(platform.ErrUnavailable, "%s: the docker engine at %s cannot reach the registry %s (%s)", doing, p.host, registryHost, msg)
	}
	return kindErrorf(ErrImage, "%s: %s", doing, msg)
}

// BuildImage builds an image of one static binary (FROM scratch) on the
// engine, offline, as o says (the quickstart's example app), and returns
// it pinned, by its first tag.
func (p *Platform) BuildImage(ctx context.Context, o scratch.Options) (platform.Image, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.PullTimeout)
	defer cancel()
	id, err := scratch.Build(ctx, p.cli, o)
	if client.IsErrConnectionFailed(err) || (errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil) {
		return platform.Image{}, p.engineErr(ctx, "building an image of "+o.Binary, err)
	}
	if err != nil {
		return platform.Image{}, err
	}
	img := platform.Image{ID: id}
	if len(o.Tags) > 0 {
		img.Ref = o.Tags[0]
	}
	return img, nil
}
