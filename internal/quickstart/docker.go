package quickstart

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/platform"
	"bluegreen/internal/platform/docker"
	"bluegreen/internal/platform/docker/scratch"
)

// The example's spec on the docker platform. v2 is made from the live spec
// by deploy --image, so v1's spec already holds the canary of v2 (an app's
// first deployment goes to 100 % at once whatever its strategy).
const specDocker = `app: hello
platform: docker
docker:
  image: %s
  instances: 2
  stop_timeout: 10s
  pull: never        # built on the engine by the quickstart
`

// imageRepo names the example's images; each version is a tag.
const imageRepo = "bluegreen-hello"

func imageRef(version string) string { return imageRepo + ":" + version }

// OpenDocker opens the Docker engine the server will use (DOCKER_HOST,
// else the default socket) and checks that it answers, so that a missing
// engine stops the quickstart before it starts anything.
func OpenDocker(ctx context.Context) (*docker.Platform, error) {
	// The owner labels containers; the quickstart itself runs none.
	p, err := docker.New(docker.Options{Owner: "bluegreen-quickstart"})
	if err != nil {
		return nil, fmt.Errorf("%w; point DOCKER_HOST at a Docker engine (DOCKER_HOST=unix:///path/to/docker.sock)", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := p.Describe(cctx); err != nil {
		p.Close()
		// The error names the address and where it came from.
		return nil, fmt.Errorf("%w; start that engine, or point DOCKER_HOST at one that runs (DOCKER_HOST=unix:///path/to/docker.sock)", err)
	}
	return p, nil
}

// engine is the engine's address, as the server finds it too.
func (r *run) engine() string {
	addr, _ := r.docker.Engine()
	return addr
}

// buildImages builds an image of the example app per version (FROM
// scratch: the static binary and a VERSION file), offline.
func (r *run) buildImages(ctx context.Context) error {
	r.built = map[string]platform.Image{}
	for _, v := range []string{"v1", "v2"} {
		img, err := r.docker.BuildImage(ctx, scratch.Options{
			Binary: filepath.Join(r.o.Dir, "hello"),
			Files:  map[string]string{"/VERSION": v + "\n"},
			Tags:   []string{imageRef(v)},
			Labels: map[string]string{"io.bluegreen.example": "hello"},
		})
		if err != nil {
			return err
		}
		r.built[v] = img
		fmt.Fprintf(r.o.Out, "  %s  %s\n", img.Ref, shortID(img.ID))
	}
	return nil
}

// deployImageSpec deploys v1 as a user deploys a first revision: a bundle
// of its bluegreen.yaml, naming the image.
func (r *run) deployImageSpec(ctx context.Context) (api.Deployment, error) {
	spec := fmt.Sprintf(specDocker, imageRef("v1")) + fmt.Sprintf(specRouting, r.prod, r.test) + specV2
	b, err := bundle([]bundleFile{{"bluegreen.yaml", 0o644, []byte(spec)}})
	if err != nil {
		return api.Deployment{}, err
	}
	rev, err := r.api.UploadRevision(ctx, bytes.NewReader(b), "v1")
	if err != nil {
		return api.Deployment{}, err
	}
	about, err := r.pin(rev, "v1")
	if err != nil {
		return api.Deployment{}, err
	}
	return r.deploy(ctx, rev, about)
}

// deployImage deploys a version as a CI job does after pushing its image:
// a revision of the live spec with that image (deploy --image).
func (r *run) deployImage(ctx context.Context, version string) (api.Deployment, error) {
	rev, err := r.api.CreateImageRevision(ctx, r.app, imageRef(version), version)
	if err != nil {
		return api.Deployment{}, err
	}
	about, err := r.pin(rev, version)
	if err != nil {
		return api.Deployment{}, err
	}
	return r.deploy(ctx, rev, about)
}

// pin records the image a revision pinned, which must be the one built:
// another would mean the server talks to another engine.
func (r *run) pin(rev api.Revision, version string) (string, error) {
	want := r.built[version]
	if rev.Image == nil || rev.Image.ID != want.ID {
		got := "no image"
		if rev.Image != nil {
			got = rev.Image.ID
		}
		return "", fmt.Errorf("revision %d pinned %s, but %s is %s on the engine at %s: does the server use another engine?", rev.Generation, got, want.Ref, want.ID, r.engine())
	}
	r.pinned = append(r.pinned, Pinned{Revision: rev.Generation, Ref: rev.Image.Ref, ID: rev.Image.ID})
	return fmt.Sprintf(", image %s (%s)", rev.Image.Ref, shortID(rev.Image.ID)), nil
}

// shortID is an image ID as docker shows it: 12 hex digits.
func shortID(id string) string {
	h := strings.TrimPrefix(id, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}
