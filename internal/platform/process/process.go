package process

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/idlock"
	"bluegreen/internal/platform/portalloc"
)

// Options configure a Platform.
type Options struct {
	// StateDir holds the instance records, exit statuses and logs. Required.
	// One server at a time may use a state directory.
	StateDir string
	// Host is the address instances listen on and the router dials
	// (default 127.0.0.1).
	Host string
	// Shim is the argv prefix that runs the instance shim; the instance ID is
	// appended. Default: this executable with "instance-shim", which is what
	// the bluegreen binary provides.
	Shim []string
	// ShimPerFleet has one shim watch every instance of a fleet (see
	// fleetshim.go) instead of one shim per instance: a few processes and
	// megabytes per fleet rather than per instance, for servers with
	// thousands of instances. Instances launched before a change keep the
	// shims they have.
	ShimPerFleet bool
	// LogMaxBytes is the size at which an instance's log file is rotated
	// (default 10 MiB); LogKeep is how many rotated files are kept (default 3).
	LogMaxBytes int64
	LogKeep     int
	// RingLines is how many of an instance's last output lines are kept in
	// memory for Logs (default 1000).
	RingLines int
	// Poll is how often log files and stopping processes are looked at
	// (default 50ms).
	Poll time.Duration
	// StartTimeout bounds how long Launch waits for the shim to report that
	// the app has started (default 10s).
	StartTimeout time.Duration
	// Logger receives the platform's own events (default: discarded).
	Logger *slog.Logger
	// Redact, when set, returns what hides known secret values in the
	// output of an instance (see Logs). It is asked once for each instance
	// whose output the platform starts keeping.
	Redact func() func(string) string
}

// Platform runs instances as local processes, each watched by a shim, and
// adopts the ones a previous server left running.
type Platform struct {
	opts  Options
	files layout
	log   *slog.Logger

	mu       sync.Mutex
	locks    idlock.Locks // serializes Launch and Stop per ID
	ports    *portalloc.Allocator
	children map[int]bool       // shims this value started, not yet reaped
	swept    time.Time          // the last sweep of all children (see reap)
	tailers  map[string]*tailer // by instance ID
	// recs are the instance records on disk, by ID, and their IDs by app:
	// what List reads, so that listing one app costs its own instances,
	// not a read of every record of every app. Launch and Stop keep them
	// as the files are (see track).
	recs  map[string]record
	byApp map[string]map[string]bool
	// ports are the ports the records hold, counted (portUse) and as a
	// set (portsHeld) for the allocator.
	portUse   map[int]int
	portsHeld map[int]bool
	closed    bool
	stop      context.CancelFunc // ends the tailers
	ctx       context.Context
	wg        sync.WaitGroup
}

var _ platform.Platform = (*Platform)(nil)

// New opens the platform on opts.StateDir and starts keeping the output of
// the instances recorded there, which it adopts as they are.
func New(opts Options) (*Platform, error) {
	if opts.StateDir == "" {
		return nil, errors.New("process platform: a state directory is required")
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if len(opts.Shim) == 0 {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("process platform: finding the shim: %w", err)
		}
		opts.Shim = []string{self, "instance-shim"}
	}
	if opts.LogMaxBytes <= 0 {
		opts.LogMaxBytes = 10 << 20
	}
	if opts.LogKeep <= 0 {
		opts.LogKeep = 3
	}
	if opts.RingLines <= 0 {
		opts.RingLines = 1000
	}
	if opts.Poll <= 0 {
		opts.Poll = 50 * time.Millisecond
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// The shim runs in "/", so every path it is given must be absolute.
	stateDir, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("process platform: %w", err)
	}
	opts.StateDir = stateDir
	files := layout{stateDir}
	// The records and the logs are the server's alone: an app's output may
	// hold its secrets, and apps may run as other users (InstanceSpec.User).
	for _, d := range []string{stateDir, files.instancesDir(), files.logsDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("process platform: %w", err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, fmt.Errorf("process platform: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Platform{
		opts: opts, files: files, log: opts.Logger.With("platform", "process"),
		ports: portalloc.New(opts.Host), children: map[int]bool{},
		tailers: map[string]*tailer{}, ctx: ctx, stop: cancel,
		recs: map[string]record{}, byApp: map[string]map[string]bool{},
		portUse: map[int]int{}, portsHeld: map[int]bool{},
	}
	ids, err := files.recordIDs()
	if err != nil {
		return nil, fmt.Errorf("process platform: reading instance records: %w", err)
	}
	for _, id := range ids {
		rec, err := files.readRecord(id)
		if err != nil {
			// Launch and Stop of the ID say so again, to whoever asks.
			p.log.Warn("unreadable instance record", "instance", id, "err", err)
			continue
		}
		p.index(rec)
		running := alive(rec.PID, rec.StartTicks)
		p.log.Info("found instance", "instance", id, "pid", rec.PID, "running", running)
		p.ensureTailer(id, rec)
	}
	return p, nil
}

// index adds rec to the records List reads.
func (p *Platform) index(rec record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.recs[rec.ID]; ok {
		p.releasePortLocked(old.Port)
	}
	p.recs[rec.ID] = rec
	p.portUse[rec.Port]++
	p.portsHeld[rec.Port] = true
	ids := p.byApp[rec.App]
	if ids == nil {
		ids = map[string]bool{}
		p.byApp[rec.App] = ids
	}
	ids[rec.ID] = true
}

// unindex drops id from the records List reads.
func (p *Platform) unindex(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rec, ok := p.recs[id]
	if !ok {
		return
	}
	delete(p.recs, id)
	p.releasePortLocked(rec.Port)
	if ids := p.byApp[rec.App]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(p.byApp, rec.App)
		}
	}
}

// releasePortLocked counts one record less holding port.
func (p *Platform) releasePortLocked(port int) {
	if p.portUse[port]--; p.portUse[port] <= 0 {
		delete(p.portUse, port)
		delete(p.portsHeld, port)
	}
}

// track makes the index say what the disk says of id, after a Launch or a
// Stop, whichever way it ended (a shim that wrote its record before the
// launch failed leaves an instance List must show). The caller holds id's
// lock. A record that cannot be read is left out, as if it were not there:
// Launch and Stop read it again and say what is wrong with it.
func (p *Platform) track(id string) {
	rec, err := p.files.readRecord(id)
	if err != nil {
		p.unindex(id)
		return
	}
	p.unindex(id) // the app of a record read anew may differ
	p.index(rec)
}

// Name returns "process".
func (p *Platform) Name() string { return "process" }

// Close stops following logs and waits for the goroutines that did. It never
// stops an instance: they outlive the server by design.
func (p *Platform) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.stop()
	p.wg.Wait()
	return nil
}

// lockID serializes operations on one instance ID.
func (p *Platform) lockID(id string) (unlock func()) { return p.locks.Lock(id) }

// allocatePort gives a launch a free port on Host, skipping the ports the
// records hold, which the index keeps as a set: a launch costs the same
// with ten instances or ten thousand. The port of an instance that has
// exited is skipped too until its record goes, rather than every
// process's state being read at every launch.
func (p *Platform) allocatePort() (port int, release func(), err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ports.Allocate(p.portsHeld)
}

// sweepEvery bounds how often reap looks at every shim this value started.
const sweepEvery = time.Second

// reap collects the shims this value started that have exited, so they do
// not linger as zombies while the server runs. It looks at all of them at
// most once every sweepEvery: a zombie counts as gone everywhere (alive),
// so collecting it can wait, and a server with thousands of instances
// would otherwise make thousands of system calls on every List.
func (p *Platform) reap() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.swept) < sweepEvery {
		return
	}
	p.swept = time.Now()
	for pid := range p.children {
		p.reapLocked(pid)
	}
}

// reapPID collects one shim this value started, if it has exited.
func (p *Platform) reapPID(pid int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.children[pid] {
		p.reapLocked(pid)
	}
}

func (p *Platform) reapLocked(pid int) {
	wpid, err := syscall.Wait4(pid, nil, syscall.WNOHANG, nil)
	if wpid == pid || errors.Is(err, syscall.ECHILD) {
		delete(p.children, pid)
	}
}

// instance describes a record as the engine sees it.
func (p *Platform) instance(rec record) platform.Instance {
	in := platform.Instance{
		ID: rec.ID, App: rec.App, Revision: rec.Revision, Fleet: rec.Fleet, Service: rec.Service, Index: rec.Index,
		Address: net.JoinHostPort(rec.Host, strconv.Itoa(rec.Port)),
		State:   platform.StateRunning, PID: rec.PID, StartedAt: rec.StartedAt,
	}
	if !alive(rec.PID, rec.StartTicks) {
		e, ok := p.files.readExit(rec.ID)
		if !ok && alive(rec.ShimPID, rec.ShimStartTicks) {
			// The app is gone but its shim is still putting its last output
			// in the log, and then its exit code: until then the instance is
			// reported as it was, so that the code, when it is read, is the
			// true one and not "unknown".
			return in
		}
		in.State, in.ExitCode = platform.StateExited, -1
		if ok {
			in.ExitCode = e.Code
		}
	}
	return in
}

// List returns the recorded instances of app (all when app is ""), sorted
// by ID. An instance whose process is gone, or whose PID now belongs to a
// process started at another time, is exited; its exit code is the one the
// shim recorded, or -1 if there is none (the shim was killed). While the
// shim still finishes (the app's last output, then its code), the instance
// is listed as running.
func (p *Platform) List(ctx context.Context, app string) ([]platform.Instance, error) {
	p.reap()
	var recs []record
	p.mu.Lock()
	if app == "" {
		for _, rec := range p.recs {
			recs = append(recs, rec)
		}
	} else {
		for id := range p.byApp[app] {
			recs = append(recs, p.recs[id])
		}
	}
	p.mu.Unlock()
	slices.SortFunc(recs, func(a, b record) int { return cmp.Compare(a.ID, b.ID) })
	out := make([]platform.Instance, 0, len(recs))
	for _, rec := range recs {
		out = append(out, p.instance(rec))
	}
	return out, nil
}
