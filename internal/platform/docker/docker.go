package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/idlock"
	"bluegreen/internal/platform/portalloc"
)

// Options configure a Platform.
type Options struct {
	// DockerHost is the engine's address ("unix:///var/run/docker.sock",
	// "tcp://127.0.0.1:2375"). Empty: DOCKER_HOST, else the SDK's default
	// (unix:///var/run/docker.sock). DOCKER_CERT_PATH and DOCKER_TLS_VERIFY
	// configure TLS, DOCKER_API_VERSION pins the API version, as for the
	// docker CLI.
	DockerHost string
	// DockerHostSource names where DockerHost came from, for messages
	// ("--docker-host"); default "the server's settings".
	DockerHostSource string
	// Owner is the identity of the bluegreen server that owns the
	// containers (stored in a label). Required. A Platform lists, stops
	// and reads only containers of its owner, so several servers can share
	// an engine; a server restarted with the same Owner adopts its
	// containers.
	Owner string
	// Host is the address instances listen on and the router dials
	// (default 127.0.0.1).
	Host string
	// Network is how containers reach the network. Only "host" (the
	// default) is supported: the container shares the host's network and
	// listens on Host:PORT. A bridge network would publish PORT on Host
	// instead; the Address of an instance would not change.
	Network string
	// Timeout bounds each call to the engine, so that an engine that hangs
	// fails the call instead (default 30s). Pulls have PullTimeout, and a
	// followed log stream lasts as long as its context.
	Timeout time.Duration
	// PullTimeout bounds a pull (default 10 minutes).
	PullTimeout time.Duration
	// LogMaxBytes is the size at which the engine rotates a container's
	// log (json-file driver; default 10 MiB); LogFiles is how many files
	// it keeps (default 3).
	LogMaxBytes int64
	LogFiles    int
	// Logger receives the platform's own events (default: discarded).
	Logger *slog.Logger
	// Redact, when set, returns what hides known secret values in the
	// output of an instance (see Logs). It is asked once per Logs call.
	Redact func() func(string) string
}

// Platform runs instances as containers on a Docker engine.
type Platform struct {
	opts   Options
	host   string // the engine's address
	source string // where host came from, for messages
	cli    *client.Client
	log    *slog.Logger
	tag    string // the owner's short form in container names

	locks idlock.Locks // serializes Launch and Stop per ID
	ports *portalloc.Allocator

	mu        sync.Mutex
	launching map[string]bool // IDs whose container may exist but not yet run
}

var (
	_ platform.Platform      = (*Platform)(nil)
	_ platform.ImageResolver = (*Platform)(nil)
)

// ErrImage is platform.ErrImage: an image that cannot be had.
var ErrImage = platform.ErrImage

// New returns the platform of the engine opts name. It does not connect:
// an engine that is down fails the calls that need it, with an error that
// names its address, until it is up.
func New(opts Options) (*Platform, error) {
	if opts.Owner == "" {
		return nil, errors.New("docker platform: an owner is required")
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Network == "" {
		opts.Network = "host"
	}
	if opts.Network != "host" {
		return nil, fmt.Errorf("docker platform: network %q is not supported; only \"host\" is", opts.Network)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.PullTimeout <= 0 {
		opts.PullTimeout = 10 * time.Minute
	}
	if opts.LogMaxBytes <= 0 {
		opts.LogMaxBytes = 10 << 20
	}
	if opts.LogFiles <= 0 {
		opts.LogFiles = 3
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	host, source := opts.DockerHost, opts.DockerHostSource
	switch {
	case host != "" && source == "":
		source = "the server's settings"
	case host == "" && os.Getenv(client.EnvOverrideHost) != "":
		host, source = os.Getenv(client.EnvOverrideHost), client.EnvOverrideHost
	case host == "":
		host, source = client.DefaultDockerHost, "the default"
	}
	cli, err := client.New(client.FromEnv, client.WithHost(host))
	if err != nil {
		return nil, fmt.Errorf("docker platform: engine address %q (from %s): %w", host, source, err)
	}
	sum := sha256.Sum256([]byte(opts.Owner))
	return &Platform{
		opts: opts, host: host, source: source, cli: cli,
		log:       opts.Logger.With("platform", "docker", "engine", host),
		tag:       hex.EncodeToString(sum[:4]),
		ports:     portalloc.New(opts.Host),
		launching: map[string]bool{},
	}, nil
}

// Name returns "docker".
func (p *Platform) Name() string { return "docker" }

// Close releases the client's connections. Containers keep running.
func (p *Platform) Close() error { return p.cli.Close() }

// Engine returns the engine's address and where it came from
// ("DOCKER_HOST", "the default", Options.DockerHostSource).
func (p *Platform) Engine() (address, source string) { return p.host, p.source }

// EngineInfo is what Describe tells of the engine.
type EngineInfo struct {
	Address string // the engine's address
	Source  string // where the address came from
	// Version is the engine's version ("20.10.24+dfsg1"); APIVersion the
	// API version the platform speaks with it, negotiated down from the
	// SDK's to what the engine supports ("1.41").
	Version    string
	APIVersion string
	// LiveRestore says the engine keeps containers running while it is
	// restarted.
	LiveRestore bool
}

// Describe asks the engine which it is, for the server to log at start.
func (p *Platform) Describe(ctx context.Context) (EngineInfo, error) {
	info := EngineInfo{Address: p.host, Source: p.source}
	ctx, cancel := p.call(ctx)
	defer cancel()
	v, err := p.cli.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return info, p.engineErr(ctx, "asking the engine's version", err)
	}
	sys, err := p.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return info, p.engineErr(ctx, "asking about the engine", err)
	}
	info.Version, info.APIVersion, info.LiveRestore = v.Version, p.cli.ClientVersion(), sys.Info.LiveRestoreEnabled
	return info, nil
}

// call bounds one request to the engine.
func (p *Platform) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, p.opts.Timeout)
}

// engineErr turns an error of the engine into one a person can act on:
// an engine that cannot be reached or does not answer is named with its
// address and where the address came from, and wraps
// platform.ErrUnavailable; the engine's own message loses its "Error
// response from daemon" prefix.
func (p *Platform) engineErr(ctx context.Context, doing string, err error) error {
	switch {
	case client.IsErrConnectionFailed(err):
		return kindErrorf(platform.ErrUnavailable, "%s: docker engine at %s (from %s) is unreachable: %s",
			doing, p.host, p.source, connectCause(err))
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return kindErrorf(platform.ErrUnavailable, "%s: docker engine at %s (from %s) did not answer within %v",
			doing, p.host, p.source, p.opts.Timeout)
	case isEngineGone(err):
		return kindErrorf(platform.ErrUnavailable, "%s: docker engine at %s (from %s) went away: %v",
			doing, p.host, p.source, err)
	}
	return fmt.Errorf("%s: %s", doing, daemonMessage(err))
}

// connectCause is the innermost useful part of a connection error: the
// dial that failed ("dial unix /run/docker.sock: connect: no such file or
// directory").
func connectCause(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Error()
	}
	return err.Error()
}

// isEngineGone reports an engine that closed the connection mid-request
// (it was stopped while answering).
func isEngineGone(err error) bool {
	s := err.Error()
	return strings.Contains(s, "EOF") || strings.Contains(s, "connection reset by peer") || strings.Contains(s, "broken pipe")
}

// daemonMessage is the engine's message without the SDK's prefix.
func daemonMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "Error response from daemon: ")
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
