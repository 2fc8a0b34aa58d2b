package kubernetes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/idlock"
	"bluegreen/internal/platform/portalloc"
)

// Options configure a Platform.
type Options struct {
	// Kubeconfig is the path of a kubeconfig file. Empty: KUBECONFIG, else
	// the in-cluster configuration of the pod the server runs in.
	Kubeconfig string
	// KubeconfigSource names where Kubeconfig came from, for messages
	// ("--kubeconfig"); default "the server's settings".
	KubeconfigSource string
	// Config, when set, is used instead of any kubeconfig (tests).
	Config *rest.Config
	// Namespace is where the pods run. Empty: the namespace of the
	// kubeconfig's context, else "default".
	Namespace string
	// Owner is the identity of the bluegreen server that owns the pods
	// (in a label, as a hash, and an annotation). Required. A Platform
	// lists, stops and reads only pods of its owner, so several servers
	// can share a namespace; a server restarted with the same Owner adopts
	// its pods.
	Owner string
	// Host is where the platform asks the kernel for a free port to give
	// a pod (default 127.0.0.1). Where the server shares its node's
	// network, a port something else on the node holds is never given;
	// elsewhere (a cluster of several nodes, a node in a network namespace
	// of its own) the port is only one of the kernel's ephemeral range
	// that no pod of the namespace holds, and a pod whose port is taken on
	// its node fails to start and is launched again.
	Host string
	// Timeout bounds each call to the API server (default 30s). A followed
	// log stream lasts as long as its context.
	Timeout time.Duration
	// StartTimeout bounds how long Launch waits for a pod to start: to be
	// scheduled, to get its image, to run (default 2 minutes).
	StartTimeout time.Duration
	// Logger receives the platform's own events (default: discarded).
	Logger *slog.Logger
	// Redact, when set, returns what hides known secret values in the
	// output of an instance (see Logs). It is asked once per Logs call.
	Redact func() func(string) string
}

// Platform runs instances as pods of a Kubernetes cluster.
type Platform struct {
	opts   Options
	ns     string
	server string // the API server's URL
	source string // where the configuration came from, for messages
	cs     kubernetes.Interface
	log    *slog.Logger
	tag    string // a hash of the owner: in names and the owner label

	locks idlock.Locks // serializes Launch and Stop per ID
	ports *portalloc.Allocator
	cache *podCache // what List reads, when it can be trusted
}

var (
	_ platform.Platform      = (*Platform)(nil)
	_ platform.ImageResolver = (*Platform)(nil)
)

// New returns the platform of the cluster opts name. It does not connect:
// a cluster that cannot be reached fails the calls that need it, with an
// error that names the API server, until it answers.
func New(opts Options) (*Platform, error) {
	if opts.Owner == "" {
		return nil, errors.New("kubernetes platform: an owner is required")
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 2 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg, ns, source, err := loadConfig(opts)
	if err != nil {
		return nil, err
	}
	// client-go's default of 5 requests a second would make a fleet's
	// launches queue behind each other.
	cfg.QPS, cfg.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes platform: API server %s (from %s): %w", cfg.Host, source, err)
	}
	sum := sha256.Sum256([]byte(opts.Owner))
	p := &Platform{
		opts: opts, ns: ns, server: cfg.Host, source: source, cs: cs,
		tag:   hex.EncodeToString(sum[:4]),
		ports: portalloc.New(opts.Host),
	}
	p.log = opts.Logger.With("platform", "kubernetes", "namespace", ns)
	if p.cache, err = newPodCache(cfg, ns, p.selector(""), p.log); err != nil {
		return nil, fmt.Errorf("kubernetes platform: API server %s (from %s): %w", cfg.Host, source, err)
	}
	return p, nil
}

// Close stops the platform's watch of its pods. The platform's calls still
// work after it, each asking the API server.
func (p *Platform) Close() error {
	p.cache.close()
	return nil
}

// loadConfig finds the cluster: Options.Config, else the kubeconfig that
// Options.Kubeconfig or KUBECONFIG names, else the in-cluster configuration
// of the pod the server runs in. ~/.kube/config is not read unless named:
// a server drives no cluster it was not pointed at.
func loadConfig(opts Options) (*rest.Config, string, string, error) {
	ns := opts.Namespace
	if opts.Config != nil {
		if ns == "" {
			ns = "default"
		}
		return rest.CopyConfig(opts.Config), ns, "the server's settings", nil
	}
	var rules *clientcmd.ClientConfigLoadingRules
	var source string
	switch env := os.Getenv(clientcmd.RecommendedConfigPathEnvVar); {
	case opts.Kubeconfig != "":
		rules = &clientcmd.ClientConfigLoadingRules{ExplicitPath: opts.Kubeconfig}
		from := opts.KubeconfigSource
		if from == "" {
			from = "the server's settings"
		}
		source = opts.Kubeconfig + " (from " + from + ")"
	case env != "":
		rules = &clientcmd.ClientConfigLoadingRules{Precedence: filepath.SplitList(env)}
		source = env + " (from " + clientcmd.RecommendedConfigPathEnvVar + ")"
	default:
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, "", "", fmt.Errorf("kubernetes platform: no cluster configured (--kubeconfig, KUBECONFIG, or a pod's service account): %w", err)
		}
		if ns == "" {
			b, _ := os.ReadFile(inClusterNamespace)
			if ns = strings.TrimSpace(string(b)); ns == "" {
				ns = "default"
			}
		}
		return cfg, ns, "the pod's service account", nil
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", "", fmt.Errorf("kubernetes platform: kubeconfig %s: %w", source, err)
	}
	if ns == "" {
		if ns, _, err = cc.Namespace(); err != nil || ns == "" {
			ns = "default"
		}
	}
	return cfg, ns, source, nil
}

// inClusterNamespace holds the namespace of the pod the server runs in.
const inClusterNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// Configured reports whether a cluster is named: kubeconfig (a path, ""
// for none) or KUBECONFIG names a kubeconfig, or the server runs in a pod
// of a cluster.
func Configured(kubeconfig string) bool {
	if kubeconfig != "" || os.Getenv(clientcmd.RecommendedConfigPathEnvVar) != "" {
		return true
	}
	return os.Getenv("KUBERNETES_SERVICE_HOST") != "" && os.Getenv("KUBERNETES_SERVICE_PORT") != ""
}

// Name returns "kubernetes".
func (p *Platform) Name() string { return "kubernetes" }

// Namespace returns the namespace the pods run in.
func (p *Platform) Namespace() string { return p.ns }

// Cluster returns the API server's URL and where its configuration came
// from.
func (p *Platform) Cluster() (server, source string) { return p.server, p.source }

// Describe asks the API server its version, for the server to log at start.
func (p *Platform) Describe(ctx context.Context) (string, error) {
	cctx, cancel := p.call(ctx)
	defer cancel()
	body, err := p.cs.Discovery().RESTClient().Get().AbsPath("/version").Do(cctx).Raw()
	if err != nil {
		return "", p.apiErr(cctx, "asking the cluster's version", err)
	}
	var v version.Info
	if err := json.Unmarshal(body, &v); err != nil {
		return "", fmt.Errorf("asking the cluster's version: %w", err)
	}
	return v.GitVersion, nil
}

// call bounds one request to the API server.
func (p *Platform) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, p.opts.Timeout)
}

// apiErr turns an error of the API server into one a person can act on:
// a server that cannot be reached or does not answer is named with its
// URL and where it came from, and wraps platform.ErrUnavailable; a refusal
// (no permission, an invalid object) says what the server said, which
// names the object.
func (p *Platform) apiErr(ctx context.Context, doing string, err error) error {
	var op *net.OpError
	switch {
	case errors.As(err, &op):
		return kindErrorf(platform.ErrUnavailable, "%s: the Kubernetes API server %s (from %s) is unreachable: %v",
			doing, p.server, p.source, op)
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil,
		apierrors.IsTimeout(err), apierrors.IsServerTimeout(err), apierrors.IsTooManyRequests(err),
		apierrors.IsServiceUnavailable(err):
		return kindErrorf(platform.ErrUnavailable, "%s: the Kubernetes API server %s did not answer in time: %v",
			doing, p.server, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: the Kubernetes API server refused: %v", doing, err)
	case strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "EOF"):
		return kindErrorf(platform.ErrUnavailable, "%s: the Kubernetes API server %s (from %s) is unreachable: %v",
			doing, p.server, p.source, err)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// kindError is an error of a kind (platform.ErrUnavailable, ErrImage) that
// errors.Is finds, with a message that does not repeat the kind's.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

func kindErrorf(kind error, format string, args ...any) error {
	return &kindError{msg: fmt.Sprintf(format, args...), kind: kind}
}
