// Package platform is the boundary between the deployment engine and the
// place where instances run: local processes today, Docker containers and
// Kubernetes pods next.
//
// The engine chooses every instance's ID, so Launch is idempotent: launching
// an ID that is already running returns the running instance, and a restarted
// engine can re-issue the launches it was doing when it stopped. List reports
// what really runs (not what was asked for), so a restarted engine adopts the
// instances still alive and replaces the dead ones. Stop treats "not found"
// as success.
package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// InstanceSpec says how to run one instance.
type InstanceSpec struct {
	// ID is chosen by the caller and names the instance on the platform
	// (e.g. "shop-7-green-0"): [a-z0-9-], at most 100 characters.
	ID       string
	App      string
	Revision int64  // the revision's generation
	Fleet    string // the fleet (slot) the instance belongs to: "blue" or "green"
	// Service is the service of a stack the instance runs ("" for an app
	// of one service).
	Service string
	Index   int // 0-based position in its fleet (of its service)

	// Dir is the unpacked revision, the root that WorkDir is relative to.
	Dir string
	// WorkDir is the working directory relative to Dir ("." for Dir itself).
	WorkDir string
	// Command is the argv. ${NAME} in it is expanded (see spec.Expand) from
	// PORT (the port the platform chose), Vars, and the environment of the
	// bluegreen server; an unset name fails Launch.
	Command []string
	// Env is the spec's env: set in the instance after its values are
	// expanded from the same sources as Command (never from each other).
	Env map[string]string
	// Vars are set in the instance as given, and are sources for expansion:
	// the pinned params and BG_APP, BG_REVISION, BG_FLEET, BG_INSTANCE.
	Vars map[string]string

	// StopSignal is sent to stop the instance gracefully ("SIGTERM", ...);
	// StopTimeout later it is killed.
	StopSignal  string
	StopTimeout time.Duration

	// User is who the app runs as. Nil runs it as the platform itself runs;
	// the engine always sets it, from the server's run-as policy. A
	// container runs as this user's numeric uid:gid unless Container.User
	// names another.
	User *User

	// Platform names the platform that runs the instance ("process",
	// "docker"): a Set launches it there. Empty means the Set's default.
	Platform string
	// Container says how an image-based platform runs the instance; nil for
	// a process. Command, when non-nil, replaces the image's CMD; Dir is
	// still the unpacked revision (hooks run there, volumes come from it);
	// WorkDir is ignored in favour of Container.WorkDir.
	Container *Container
}

// Container is how to run an instance from an image.
type Container struct {
	// Image is the image the revision pinned: every instance of a revision
	// runs Image.ID, whatever its reference points at now.
	Image Image
	// Entrypoint replaces the image's entrypoint when non-nil.
	Entrypoint []string
	// User is "uid", "uid:gid" or a user name inside the image; "" runs the
	// container as InstanceSpec.User.
	User string
	// WorkDir is the working directory inside the container ("" keeps the
	// image's).
	WorkDir string
	// MemoryBytes and NanoCPUs limit the container (0: no limit).
	MemoryBytes int64
	NanoCPUs    int64
	// Volumes are bind mounts, always read-only, of directories or files
	// of the unpacked revision (Source is relative to InstanceSpec.Dir).
	Volumes []Volume
	// Tmpfs are writable in-memory mounts.
	Tmpfs []Tmpfs
	// Pull says when the image is fetched from its registry: PullMissing
	// (default), PullAlways or PullNever.
	Pull string
	// Auth is the registry login for pulls (nil: anonymous).
	Auth *RegistryAuth
}

// When an image is pulled from its registry.
const (
	PullMissing = "missing"
	PullAlways  = "always"
	PullNever   = "never"
)

// Image is an image reference pinned to what it meant when a revision was
// created.
type Image struct {
	// Ref is the reference as the spec wrote it ("hello:2", "127.0.0.1:5000/shop:latest").
	Ref string `json:"ref"`
	// ID is the image's content-addressed ID ("sha256:…"), what runs.
	ID string `json:"id"`
	// Digest is the repository digest ("127.0.0.1:5000/shop@sha256:…") when
	// the image came from a registry, so a host that lost the image can
	// fetch exactly this one again; "" for an image built on the host.
	Digest string `json:"digest,omitempty"`
}

// Volume is a read-only bind mount.
type Volume struct {
	Source string // relative to the unpacked revision
	Target string // absolute path in the container
}

// Tmpfs is an in-memory mount.
type Tmpfs struct {
	Target    string
	SizeBytes int64 // 0: the engine's default
}

// RegistryAuth is a registry login.
type RegistryAuth struct {
	Username string
	Password string
}

// ImageResolver is implemented by platforms that run images. Resolve finds
// the image ref names, pulling it first when pull says so (PullAlways, or
// PullMissing and the image is not on the host), and returns it pinned. An
// image that cannot be found or fetched is an error that names ref and the
// engine asked.
type ImageResolver interface {
	Resolve(ctx context.Context, ref, pull string, auth *RegistryAuth) (Image, error)
}

// User is the identity an app's processes (instances and hooks) run as.
type User struct {
	// Name is the login name, or "" for a user ID with no account (the
	// dynamic user the server gives an app of its own).
	Name string
	UID  uint32
	GID  uint32
	// Groups are the supplementary groups; none for a dynamic user.
	Groups []uint32
	// Home is $HOME in the app's environment ("/" when the user has none).
	Home string
}

// String names the user for messages: "nobody (uid 65534)", or "uid 60578"
// for a user with no account.
func (u User) String() string {
	if u.Name == "" {
		return fmt.Sprintf("uid %d", u.UID)
	}
	return fmt.Sprintf("%s (uid %d)", u.Name, u.UID)
}

// SetEnv makes HOME, USER and LOGNAME of env name u instead of whoever
// started the process; a user with no account has no USER or LOGNAME.
func (u User) SetEnv(env map[string]string) {
	env["HOME"] = u.Home
	if u.Name == "" {
		delete(env, "USER")
		delete(env, "LOGNAME")
		return
	}
	env["USER"], env["LOGNAME"] = u.Name, u.Name
}

// State of an instance as the platform sees it.
type State string

// Instance states.
const (
	StateRunning State = "running"
	StateExited  State = "exited"
)

// Instance is what runs (or ran) for an InstanceSpec.
type Instance struct {
	ID       string
	App      string
	Revision int64
	Fleet    string
	Service  string // "" for an app of one service
	Index    int
	// Address is host:port where the router reaches the instance.
	Address string
	State   State
	// PID and StartedAt identify a process (or a container's init) so a
	// restarted server never mistakes a reused PID for its instance.
	PID       int
	StartedAt time.Time
	// ExitCode is set when State is StateExited and the code is known (-1 otherwise).
	ExitCode int
	// Platform names the platform it runs on; a Set fills it in.
	Platform string
	// Detail says what runs, for people: a container's ID and image.
	Detail string
	// Container is the container's ID on a platform of containers.
	Container string
}

// LogOptions selects an instance's output for Logs.
type LogOptions struct {
	// Tail returns at most this many of the last lines (all kept when <= 0).
	Tail int
	// Follow keeps the reader open and streams new output until ctx ends or
	// the instance is gone.
	Follow bool
}

// Platform runs instances.
type Platform interface {
	// Name is the platform's name as a spec writes it ("process").
	Name() string
	// Launch starts the instance, or returns it if an instance with this ID
	// is already running. An exited instance with this ID is replaced.
	Launch(ctx context.Context, spec InstanceSpec) (Instance, error)
	// Stop stops the instance gracefully within grace, then forcibly, and
	// forgets it. An unknown ID is not an error.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// List returns the instances of app (all apps when app is ""), running
	// and exited, ordered by ID.
	List(ctx context.Context, app string) ([]Instance, error)
	// Logs returns the instance's output (stdout and stderr, in order of
	// arrival; where they arrive through two pipes, as a container's do,
	// the order holds within each stream). ErrNotFound for an unknown ID.
	Logs(ctx context.Context, id string, opts LogOptions) (io.ReadCloser, error)
}

// ErrNotFound is returned for an instance ID the platform does not know.
var ErrNotFound = errors.New("instance not found")

// ErrImage wraps the errors of an image that cannot be had: a malformed
// reference, an image that does not exist, a registry that refuses the
// credentials, a pinned image the registry no longer serves. Trying again
// does not help, unlike ErrUnavailable: a deployment that meets it rolls
// back at once.
var ErrImage = errors.New("image unavailable")

// ErrUnavailable wraps the errors of a platform that cannot be reached
// (a Docker engine that is down): the request may succeed later.
var ErrUnavailable = errors.New("platform unavailable")
