package docker

import (
	"testing"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/platformtest"
	"bluegreen/internal/testdocker"
)

func TestConformance(t *testing.T) {
	e := testdocker.Shared(t)
	owner := newOwner("conformance")
	platformtest.Run(t, platformtest.Config{
		// The state directory is the engine's: a new value of the same
		// owner adopts the containers.
		New: func(t *testing.T, _ string) platform.Platform {
			p, err := New(Options{DockerHost: e.Host, Owner: owner})
			if err != nil {
				t.Fatal(err)
			}
			return p
		},
		App: func(t *testing.T) platform.InstanceSpec {
			return platform.InstanceSpec{Dir: t.TempDir(), Container: &platform.Container{Image: appImage(t, e)}}
		},
		Adopts:          true,
		SeparateStreams: true,
	})
}
