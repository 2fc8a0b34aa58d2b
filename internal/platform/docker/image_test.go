package docker

import (
	"errors"
	"strings"
	"testing"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/platformtest"
	"bluegreen/internal/testdocker"
	"bluegreen/internal/testregistry"
)

func TestResolveErrors(t *testing.T) {
	e := testdocker.Shared(t)
	p := newPlatform(t, e, newOwner("resolve"))
	ctx := testCtx(t)
	for _, c := range []struct {
		ref, pull string
		kind      error
		want      []string
	}{
		{"no-such-image:1", platform.PullNever, ErrImage, []string{"no-such-image:1", "is not on the docker engine at " + e.Host, "pull: never"}},
		{"Hello World", platform.PullMissing, ErrImage, []string{`"Hello World" is malformed`}},
		{"hello:1", "sometimes", nil, []string{`unknown pull policy "sometimes"`}},
		// Nothing listens on port 1: the pull cannot reach the registry.
		{"127.0.0.1:1/hello:1", platform.PullMissing, platform.ErrUnavailable, []string{"127.0.0.1:1/hello:1", "cannot reach the registry 127.0.0.1:1"}},
	} {
		_, err := p.Resolve(ctx, c.ref, c.pull, nil)
		if err == nil || (c.kind != nil && !errors.Is(err, c.kind)) {
			t.Errorf("Resolve(%q, %s) = %v, want an error of kind %v", c.ref, c.pull, err, c.kind)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Resolve(%q, %s) = %v, want it to say %q", c.ref, c.pull, err, w)
			}
		}
	}

	// A revision whose image is gone from the engine, with pull never.
	s := appSpec(t, e, "gone-0", nil)
	s.Container.Image = platform.Image{Ref: "gone:1", ID: "sha256:" + strings.Repeat("0", 64)}
	s.Container.Pull = platform.PullNever
	_, err := p.Launch(ctx, s)
	if !errors.Is(err, ErrImage) || !strings.Contains(err.Error(), "gone:1") || !strings.Contains(err.Error(), "pull is never") {
		t.Errorf("Launch of an image that is gone, pull never: %v", err)
	}
}

// Images come from a real registry on loopback with basic authentication:
// a pull with the right password pins the image with its repository digest,
// a wrong password and a missing tag are clear errors, and an instance whose
// image was removed from the engine gets it back by digest.
func TestPullFromARegistry(t *testing.T) {
	e := testdocker.Shared(t)
	reg := testregistry.Start(t)
	p := newPlatform(t, e, newOwner("pull"))
	ctx := testCtx(t)
	ref := reg.Addr + "/shop:1"
	id := versionImage(t, e, "from the registry", ref)
	e.Push(t, ref, reg.Username, reg.Password)
	e.RemoveImage(t, id)
	good := &platform.RegistryAuth{Username: reg.Username, Password: reg.Password}

	_, err := p.Resolve(ctx, ref, platform.PullMissing, &platform.RegistryAuth{Username: reg.Username, Password: "wrong"})
	if !errors.Is(err, ErrImage) || !strings.Contains(err.Error(), "refused the credentials") || !strings.Contains(err.Error(), ref) {
		t.Errorf("Resolve with a wrong password: %v", err)
	}
	t.Logf("wrong password: %v", err)
	_, err = p.Resolve(ctx, ref, platform.PullMissing, nil)
	if !errors.Is(err, ErrImage) || !strings.Contains(err.Error(), "refused the credentials") {
		t.Errorf("Resolve without credentials: %v", err)
	}
	_, err = p.Resolve(ctx, reg.Addr+"/shop:2", platform.PullMissing, good)
	if !errors.Is(err, ErrImage) || !strings.Contains(err.Error(), "no such image or tag") || !strings.Contains(err.Error(), "shop:2") {
		t.Errorf("Resolve of a missing tag: %v", err)
	}
	t.Logf("missing tag: %v", err)
	if _, err := p.Resolve(ctx, ref, platform.PullNever, good); !errors.Is(err, ErrImage) {
		t.Errorf("Resolve of an image not pulled, pull never: %v", err)
	}

	img, err := p.Resolve(ctx, ref, platform.PullMissing, good)
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != id || img.Ref != ref || !strings.HasPrefix(img.Digest, reg.Addr+"/shop@sha256:") {
		t.Fatalf("Resolve = %+v, want ID %s and a digest of %s/shop", img, id, reg.Addr)
	}
	if again, err := p.Resolve(ctx, ref, platform.PullAlways, good); err != nil || again != img {
		t.Errorf("Resolve with pull always = %+v, %v; want %+v", again, err, img)
	}

	// The engine loses the image (pruned, another host): Launch fetches
	// exactly the pinned one again, by digest.
	e.RemoveImage(t, id)
	s := appSpec(t, e, "pulled-0", nil)
	s.Container.Image, s.Container.Auth = img, good
	in := launch(t, p, s)
	platformtest.WaitServing(t, in)
	if got, err := platformtest.Get(in.Address, "/file?path=/etc/version"); err != nil || got != "from the registry" {
		t.Errorf("the instance runs %q (%v), want the image from the registry", got, err)
	}
}
