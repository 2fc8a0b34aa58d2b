package cli

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"bluegreen/internal/certs"
	"bluegreen/internal/engine"
	"bluegreen/internal/notify"
	"bluegreen/internal/server"
)

type serverOptions struct {
	DataDir   string
	API       string
	LogFormat string
	StopAll   bool
	RunAs     string
	AllowRun  []string
	// ShimPer is "instance" or "fleet": what one process-platform shim watches.
	ShimPer string
	// DockerHost is the Docker engine of apps with platform: docker.
	DockerHost string
	// Kubernetes is the cluster of apps with platform: kubernetes.
	Kubernetes server.Kubernetes
	// Prometheus is asked by prometheus check rules whose spec names none.
	Prometheus string
	// ACME are the defaults of apps whose router.tls asks for acme.
	ACME server.ACME
	// What is kept of revisions no longer run.
	KeepRevisions int
	KeepFor       time.Duration
	PruneEvery    time.Duration
	// Notify configures outbound notifications.
	Notify server.Notify
}

func newServerCmd() *cobra.Command {
	var o serverOptions
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane: the store, the deployment engine, the API, and the router it drives",
		Long: `Run the control plane over a data directory: the store, the deployment engine
and the API. The router runs as its own process, started by the server (or
adopted when one is already running for this data directory), and so do the
apps' instances. SIGTERM or SIGINT stops the server but leaves the router and
the apps running: the next start adopts them and resumes every deployment
where it stood.

A server running as root runs each app's instances and hooks as a user of
the app's own (an unused user ID, no account needed), which cannot read the
server's data directory or other apps' revisions. --run-as names one user
for every app instead ("root" only when written out); --allow-run-as lists
the users an app's run_as may name. A server not running as root runs apps
as its own user and refuses any other.

Apps with platform: docker run as containers on the Docker engine that
--docker-host names (default: $DOCKER_HOST, else unix:///var/run/docker.sock).
The server says at start which engine and API version it talks to; an
engine that is down fails only the apps that run on it, with an error that
names its address.

Apps with platform: kubernetes run as pods of the cluster that --kubeconfig
names (default: $KUBECONFIG, else the cluster the server runs in; never
~/.kube/config unless named), in the namespace --kubernetes-namespace names
(default: the kubeconfig context's, else default). bluegreen's router reaches the pods at
their node's address; see docs/platform.md.

Notifications (webhooks on deployment events) go to the destinations of
each revision's spec and to those of --notifications (default:
DATA/notifications.yaml when it exists), only to public addresses unless
--notify-allow lists the network; see docs/notifications.md.

GET /api/v1/metrics serves the server's metrics and the router's to a
Prometheus holding a viewer token (docs/api.md). --prometheus names the
Prometheus that prometheus check rules ask when their spec names none.`,
		Example: `  bluegreen server
  bluegreen server --data /var/lib/bluegreen --api 127.0.0.1:7070
  bluegreen server --run-as nobody --allow-run-as www-data
  bluegreen server --docker-host unix:///run/docker.sock
  bluegreen server --kubeconfig ~/.kube/config --kubernetes-namespace shop`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runServer(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&o.DataDir, "data", "", "data directory (default $"+DataEnv+" or ./.bluegreen)")
	cmd.Flags().StringVar(&o.API, "api", server.DefaultAPIAddr, "API address (host:port)")
	cmd.Flags().StringVar(&o.LogFormat, "log-format", "auto", "log format: text, json, or auto (text on a terminal)")
	cmd.Flags().StringVar(&o.RunAs, "run-as", "", "user apps and hooks run as: dynamic (a user of each app's own), a user name or ID, or root (default: dynamic when the server runs as root, else the server's user)")
	cmd.Flags().StringSliceVar(&o.AllowRun, "allow-run-as", nil, "users an app's run_as may name (comma-separated)")
	cmd.Flags().StringVar(&o.ShimPer, "shim-per", "instance", "what one shim of the process platform watches: instance (a shim each), or fleet (one for a fleet's instances: a few threads and MB per fleet rather than per instance, for thousands of instances)")
	cmd.Flags().IntVar(&o.KeepRevisions, "keep-revisions", engine.DefaultRetention.Revisions, "revisions of each app kept with their bundles, files, instance output and events (at least 1)")
	cmd.Flags().DurationVar(&o.KeepFor, "keep-for", engine.DefaultRetention.For, "revisions younger than this are kept too, and events of this age")
	cmd.Flags().DurationVar(&o.PruneEvery, "prune-every", time.Hour, "how often what is no longer kept is removed")
	cmd.Flags().StringVar(&o.DockerHost, "docker-host", "", "Docker engine of apps with platform: docker (default $DOCKER_HOST, else unix:///var/run/docker.sock)")
	cmd.Flags().StringVar(&o.Kubernetes.Kubeconfig, "kubeconfig", "", "kubeconfig of the cluster of apps with platform: kubernetes (default $KUBECONFIG, else the cluster the server runs in)")
	cmd.Flags().StringVar(&o.Kubernetes.Namespace, "kubernetes-namespace", "", "namespace of the pods of apps with platform: kubernetes (default: the kubeconfig context's, else default)")
	cmd.Flags().DurationVar(&o.Kubernetes.StartTimeout, "kubernetes-start-timeout", 2*time.Minute, "how long a pod may take to be scheduled, get its image and start before its deployment rolls back")
	cmd.Flags().StringVar(&o.ACME.Directory, "acme-directory", "", "ACME directory of apps whose router.tls.acme names none (default Let's Encrypt: "+certs.DefaultDirectory+")")
	cmd.Flags().StringVar(&o.ACME.Email, "acme-email", "", "contact address of the ACME account when router.tls.acme names none")
	cmd.Flags().StringVar(&o.ACME.CARoots, "acme-ca-roots", "", "PEM file of extra roots trusted when talking to the ACME directory (a private ACME server's)")
	cmd.Flags().StringVar(&o.Prometheus, "prometheus", "", "Prometheus (base URL, e.g. http://127.0.0.1:9090) that prometheus check rules query when their spec sets no checks.prometheus")
	cmd.Flags().StringVar(&o.Notify.File, "notifications", "", "file of notification destinations for every app (default DATA/"+server.NotificationsFile+" when it exists)")
	cmd.Flags().StringSliceVar(&o.Notify.Allow, "notify-allow", nil, "networks notifications may be sent to besides public addresses, e.g. 10.0.0.0/8,127.0.0.1 (comma-separated)")
	cmd.Flags().IntVar(&o.Notify.Queue, "notify-queue", notify.DefaultQueueLimit, "notifications kept waiting for a destination that is down; the oldest beyond are dropped")
	cmd.Flags().DurationVar(&o.Notify.MaxAge, "notify-max-age", notify.DefaultMaxAge, "how long after its event a notification may still be delivered; then it is dropped")
	cmd.Flags().DurationVar(&o.Notify.RetryMax, "notify-retry-max", notify.DefaultRetryMax, "the longest wait between two attempts to reach a destination")
	cmd.Flags().BoolVar(&o.StopAll, "stop-all", false, "stop every instance and the router the server left running, then exit (the server must be stopped)")
	return cmd
}

func runServer(ctx context.Context, o serverOptions, stdout, stderr io.Writer) error {
	log, err := newLogger(stderr, o.LogFormat)
	if err != nil {
		return usageError{err}
	}
	if o.DataDir == "" {
		o.DataDir = defaultDataDir()
	}
	if o.StopAll {
		n, err := server.StopAll(ctx, server.StopAllOptions{DataDir: o.DataDir, DockerHost: o.DockerHost, Kubernetes: o.Kubernetes, Logger: log})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "stopped %d instances and the router of %s\n", n, o.DataDir)
		return nil
	}
	if o.ShimPer != "instance" && o.ShimPer != "fleet" {
		return usageError{fmt.Errorf("server: --shim-per must be instance or fleet, got %q", o.ShimPer)}
	}
	if o.KeepRevisions < 1 {
		return usageError{fmt.Errorf("server: --keep-revisions must be at least 1, got %d", o.KeepRevisions)}
	}
	if o.KeepFor < 0 || o.PruneEvery <= 0 {
		return usageError{fmt.Errorf("server: --keep-for must be 0 or more and --prune-every above 0")}
	}
	if o.Notify.Queue < 1 || o.Notify.MaxAge <= 0 || o.Notify.RetryMax <= 0 {
		return usageError{fmt.Errorf("server: --notify-queue must be at least 1, --notify-max-age and --notify-retry-max above 0")}
	}
	return server.Run(ctx, server.Options{DataDir: o.DataDir, APIAddr: o.API, Logger: log, RunAs: o.RunAs, AllowRunAs: o.AllowRun,
		Retention: engine.Retention{Revisions: o.KeepRevisions, For: o.KeepFor}, PruneEvery: o.PruneEvery, DockerHost: o.DockerHost,
		Kubernetes: o.Kubernetes, Notify: o.Notify, Prometheus: o.Prometheus, ACME: o.ACME, ShimPerFleet: o.ShimPer == "fleet"})
}
