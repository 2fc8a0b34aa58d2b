package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"bluegreen/internal/platform/kubernetes"
)

// Kubernetes says which cluster apps with platform: kubernetes run on.
type Kubernetes struct {
	// Kubeconfig is the path of a kubeconfig (empty: KUBECONFIG, else the
	// cluster the server runs in).
	Kubeconfig string
	// Namespace is where the pods run (empty: the kubeconfig context's,
	// else "default").
	Namespace string
	// StartTimeout bounds how long a pod may take to start: be scheduled,
	// get its image, run (0: the platform's default, 2 minutes).
	StartTimeout time.Duration
}

// openKubernetes opens the Kubernetes platform of the server, or returns
// nil when no cluster is configured: apps with platform kubernetes are then
// refused, and nothing else changes. A cluster that does not answer is no
// reason not to start: it fails the apps that run on it, and only those,
// until it answers.
func openKubernetes(ctx context.Context, dataDir string, k Kubernetes, log *slog.Logger, redact func() func(string) string) (*kubernetes.Platform, error) {
	if !kubernetes.Configured(k.Kubeconfig) {
		if log != nil {
			log.Info("no Kubernetes cluster configured (--kubeconfig, KUBECONFIG): apps with platform kubernetes cannot run")
		}
		return nil, nil
	}
	id, err := serverID(dataDir)
	if err != nil {
		return nil, err
	}
	source := ""
	if k.Kubeconfig != "" {
		source = "--kubeconfig"
	}
	p, err := kubernetes.New(kubernetes.Options{Kubeconfig: k.Kubeconfig, KubeconfigSource: source,
		Namespace: k.Namespace, Owner: id, StartTimeout: k.StartTimeout, Logger: log, Redact: redact})
	if err != nil {
		return nil, err
	}
	if log != nil {
		server, from := p.Cluster()
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if v, err := p.Describe(dctx); err != nil {
			log.Info("no Kubernetes API server answers: apps with platform kubernetes wait for it", "server", server, "from", from, "err", err)
		} else {
			log.Info(fmt.Sprintf("Kubernetes %s, namespace %s", v, p.Namespace()), "server", server, "from", from)
		}
	}
	return p, nil
}
