package routerproc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"bluegreen/internal/router"
)

// Names of the files in Options.Dir.
const (
	SocketFile = "admin.sock"  // the admin API, mode 0600
	RoutesFile = "routes.yaml" // the last table pushed; the router starts from it
	LogFile    = "router.log"  // the router's output (router.log.1 after a rotation)
	PidFile    = "router.pid"  // the router's pid
	lockFile   = "router.lock" // serialises start-or-adopt between supervisors
)

// Defaults for Options fields left zero.
const (
	DefaultReadyTimeout  = 15 * time.Second
	DefaultWatchInterval = time.Second
	DefaultMaxLogBytes   = 10 << 20
	// DefaultStopTimeout exceeds the router's own default --shutdown-timeout
	// (30s), so a stop lets requests in flight finish before SIGKILL.
	DefaultStopTimeout = 35 * time.Second
)

// maxSocketPath leaves room under the smallest sun_path (104 bytes on BSDs).
const maxSocketPath = 100

// Options configures a Supervisor.
type Options struct {
	// Dir holds the router's socket, route file, log and pid file, e.g. DATA/router.
	Dir string
	// Command is the argv prefix that runs the router; "--config FILE
	// --log-format json" is appended. Default: this executable and "router".
	Command []string
	// Logger receives the supervisor's own events; default slog.Default().
	Logger *slog.Logger
	// ReadyTimeout bounds the wait for a started router to answer.
	ReadyTimeout time.Duration
	// WatchInterval is how often the watch loop asks the router whether it is
	// there; negative turns the watch loop off.
	WatchInterval time.Duration
	// MaxLogBytes caps router.log; the older part moves to router.log.1.
	MaxLogBytes int64
	// UpgradeAdopted has Start hand the listeners of an adopted router that
	// runs another program than Command to a new router of Command (see
	// Upgrade), so that upgrading the server upgrades the router.
	UpgradeAdopted bool
	// OnRestart, when set, is called from the watch loop after it started a
	// router in place of one that had died, so the caller can push its state
	// again. It is called without the supervisor's lock held.
	OnRestart func()
}

// Supervisor starts the router process or adopts a running one, keeps it
// running, and pushes routing tables to it. It never stops the router unless
// StopRouter is called: closing the supervisor, or the death of the process
// that holds it, leaves the router serving.
type Supervisor struct {
	opts                      Options
	log                       *slog.Logger
	client                    *Client
	admin                     string // "unix:" + socket path
	sock, routes, logs, pidFn string

	// mu serialises what changes the router: table pushes, restarts and stops.
	mu      sync.Mutex
	pid     atomic.Int64
	exited  <-chan struct{} // closed when the router this supervisor started exits
	adopted bool
	// last is the table the router last took from this supervisor, nil
	// before the first push and after a push whose outcome is unknown.
	last *pushed
	// noPatch is set once the router answered that it has no PATCH /routes.
	noPatch bool

	restarted chan struct{}
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// Start adopts the router that answers on Dir/admin.sock or, when none does,
// starts one from Dir/routes.yaml (created with no apps when missing) and waits
// until it answers. Then it runs the watch loop until Close, StopRouter or the
// end of ctx.
func Start(ctx context.Context, opts Options) (*Supervisor, error) {
	s, err := newSupervisor(opts)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	adopted, err := s.ensure(ctx)
	s.adopted = adopted
	if err == nil && adopted && opts.UpgradeAdopted {
		s.upgradeIfOtherBuild(ctx)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	if s.opts.WatchInterval > 0 {
		go s.watch(wctx)
	} else {
		close(s.done)
	}
	return s, nil
}

func newSupervisor(opts Options) (*Supervisor, error) {
	if opts.Dir == "" {
		return nil, errors.New("router supervisor: Dir is required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("router directory %s: %w", opts.Dir, err)
	}
	opts.Dir = dir
	if len(opts.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding the bluegreen executable to run the router: %w", err)
		}
		opts.Command = []string{exe, "router"}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	if opts.WatchInterval == 0 {
		opts.WatchInterval = DefaultWatchInterval
	}
	if opts.MaxLogBytes <= 0 {
		opts.MaxLogBytes = DefaultMaxLogBytes
	}
	s := &Supervisor{
		opts:      opts,
		log:       opts.Logger.With("component", "router-supervisor"),
		sock:      filepath.Join(dir, SocketFile),
		routes:    filepath.Join(dir, RoutesFile),
		logs:      filepath.Join(dir, LogFile),
		pidFn:     filepath.Join(dir, PidFile),
		restarted: make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	if len(s.sock) > maxSocketPath {
		return nil, fmt.Errorf("router directory %s: the socket path %s is over %d bytes, too long for a unix socket; use a shorter directory", dir, s.sock, maxSocketPath)
	}
	s.admin = "unix:" + s.sock
	s.client = NewClient(s.admin, "")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating router directory: %w", err)
	}
	return s, nil
}

// Client returns the client of the router's admin API.
func (s *Supervisor) Client() *Client { return s.client }

// Admin returns the router's admin address, "unix:" and the socket path.
func (s *Supervisor) Admin() string { return s.admin }

// Dir returns the absolute state directory.
func (s *Supervisor) Dir() string { return s.opts.Dir }

// Pid returns the router's pid as last seen, or 0 when unknown.
func (s *Supervisor) Pid() int { return int(s.pid.Load()) }

// Adopted reports whether Start found the router already running.
func (s *Supervisor) Adopted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adopted
}

// Restarted receives a value after the watch loop replaced a dead router. It
// holds at most one pending value: several restarts before the receiver looks
// read as one, which is enough to know the state must be pushed again.
func (s *Supervisor) Restarted() <-chan struct{} { return s.restarted }

// Apply pushes the whole routing table, for every app, and returns the new
// generation. The table is written to routes.yaml before the push, so a router
// restarted after a crash comes back with it; a table the router refuses is
// taken out of the file again. The admin address is filled in; cfg is not
// changed.
func (s *Supervisor) Apply(ctx context.Context, cfg router.Config) (uint64, error) {
	if _, err := s.settings(&cfg); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applyLocked(ctx, &cfg)
}

// applyLocked is Apply; the caller holds s.mu.
func (s *Supervisor) applyLocked(ctx context.Context, cfg *router.Config) (uint64, error) {
	top, err := s.settings(cfg)
	if err != nil {
		return 0, err
	}
	tbl, err := cloneConfig(cfg)
	if err != nil {
		return 0, err
	}
	tbl.Admin = s.admin
	if err := tbl.Validate(); err != nil {
		return 0, Refused(err.Error())
	}
	// One encoding for the file, the push and the patches that follow.
	now, err := encodePushed(tbl, top)
	if err != nil {
		return 0, err
	}
	js := tableJSON(now)
	prev := s.last
	if prev == nil {
		// The file's table may not be one this supervisor pushed: keep it
		// as it is to put it back if the router refuses the new one.
		if b, err := os.ReadFile(s.routes); err == nil {
			prev = &pushed{raw: b}
		}
	}
	if err := writeFileAtomic(s.routes, append([]byte(routeFileHeader), js...), 0o600); err != nil {
		return 0, fmt.Errorf("saving the routing table: %w", err)
	}
	gen, err := s.client.putRoutesJSON(ctx, js)
	return s.settle(gen, err, prev, now)
}

// ErrRefused marks a routing table the router will not take as it is (a
// host claimed twice, a listener it cannot open): trying again changes
// nothing.
var ErrRefused = errors.New("the router refused the routing table")

// Refused wraps the router's reason for refusing a table (a validation
// message, one problem a line), on one line, in ErrRefused.
func Refused(reason string) error {
	reason = strings.TrimPrefix(reason, "invalid routing table:")
	reason = strings.Join(strings.Fields(strings.ReplaceAll(reason, "\n  ", "; ")), " ")
	return fmt.Errorf("%w: %s", ErrRefused, strings.TrimPrefix(reason, "; "))
}

// cloneConfig deep-copies a table so that validation, which fills defaults,
// leaves the caller's copy alone.
func cloneConfig(cfg *router.Config) (*router.Config, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding the routing table: %w", err)
	}
	var out router.Config
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("copying the routing table: %w", err)
	}
	return &out, nil
}

// Close stops the watch loop. The router keeps running.
func (s *Supervisor) Close() {
	s.closeOnce.Do(func() {
		if s.cancel != nil {
			s.cancel()
			<-s.done
		}
	})
}

// StopRouter stops the router process: SIGTERM, a wait bounded by ctx (or
// DefaultStopTimeout when ctx has no deadline) for its requests in flight to
// finish, then SIGKILL. It closes the supervisor first so that the watch loop
// does not start the router again. routes.yaml stays, so the next Start
// brings the last table back.
func (s *Supervisor) StopRouter(ctx context.Context) error {
	s.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	pid := s.findPid()
	if pid == 0 {
		if _, err := s.probe(ctx); err == nil {
			return fmt.Errorf("stopping the router: it answers on %s but its pid is unknown", s.sock)
		}
		os.Remove(s.pidFn)
		return nil
	}
	deadline := time.Now().Add(DefaultStopTimeout)
	if d, ok := ctx.Deadline(); ok {
		deadline = d
	}
	s.log.Info("stopping router", "pid", pid)
	if err := signalPid(pid, syscall.SIGTERM); err != nil {
		return err
	}
	if !waitGone(pid, s.exited, deadline) {
		s.log.Warn("router did not stop in time; killing it", "pid", pid)
		if err := signalPid(pid, syscall.SIGKILL); err != nil {
			return err
		}
		if !waitGone(pid, s.exited, time.Now().Add(5*time.Second)) {
			return fmt.Errorf("stopping the router: pid %d is still there after SIGKILL", pid)
		}
	}
	s.pid.Store(0)
	os.Remove(s.pidFn)
	s.log.Info("router stopped", "pid", pid)
	return nil
}

// findPid returns the pid of the running router, or 0 when none is known to run.
func (s *Supervisor) findPid() int {
	if pid, err := socketPeerPID(s.sock); err == nil && pid > 0 {
		return pid
	}
	for _, pid := range []int{int(s.pid.Load()), readPidFile(s.pidFn)} {
		if routerAlive(pid, s.routes) {
			return pid
		}
	}
	return 0
}

// probe asks the router for its generation, briefly: it tells whether one is there.
func (s *Supervisor) probe(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return s.client.Health(ctx)
}
