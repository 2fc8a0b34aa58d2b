package kubernetes

import (
	"testing"
	"time"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/platformtest"
	"bluegreen/internal/testk8s"
)

func TestConformance(t *testing.T) {
	c := testk8s.Shared(t)
	ns := newNamespace(t, c)
	owner := newOwner("conformance")
	platformtest.Run(t, platformtest.Config{
		// The state directory is the cluster's: a new value of the same
		// owner adopts the pods.
		New: func(t *testing.T, _ string) platform.Platform { return open(t, c, ns, owner) },
		App: func(t *testing.T) platform.InstanceSpec {
			return platform.InstanceSpec{Dir: t.TempDir(), Container: &platform.Container{Image: appImage(t, c)}}
		},
		Adopts:          true,
		SeparateStreams: true,
		OnlySIGTERM:     true,
		KillLatency:     5 * time.Second,
	})
}
