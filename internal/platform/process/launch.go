package process

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/runas"
)

// Launch starts the instance, or returns it if it is already running. An
// instance that has exited is cleaned up and started again, possibly on
// another port. Launch returns once the app's process has started, not
// once it is healthy.
func (p *Platform) Launch(ctx context.Context, s platform.InstanceSpec) (platform.Instance, error) {
	if err := checkID(s.ID); err != nil {
		return platform.Instance{}, fmt.Errorf("launching instance: %w", err)
	}
	unlock := p.lockID(s.ID)
	defer unlock()
	defer p.track(s.ID)
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return platform.Instance{}, fmt.Errorf("launching instance %s: the platform is closed", s.ID)
	}
	p.reap()
	rec, err := p.files.readRecord(s.ID)
	switch {
	case err == nil && alive(rec.PID, rec.StartTicks):
		p.ensureTailer(s.ID, rec)
		return p.instance(rec), nil
	case err == nil:
		// Exited: its shim may still be flushing output; let it finish
		// before a new one appends to the same log.
		if err := p.stopRecord(ctx, rec, 0); err != nil {
			return platform.Instance{}, fmt.Errorf("launching instance %s: clearing the exited one: %w", s.ID, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return platform.Instance{}, fmt.Errorf("launching instance %s: %w", s.ID, err)
	}
	rec, err = p.start(ctx, s)
	if err != nil {
		return platform.Instance{}, fmt.Errorf("launching instance %s: %w", s.ID, err)
	}
	p.log.Info("launched instance", "instance", s.ID, "pid", rec.PID, "port", rec.Port)
	p.ensureTailer(s.ID, rec)
	return p.instance(rec), nil
}

// start prepares the app's command line and environment and has a new shim
// start it.
func (p *Platform) start(ctx context.Context, s platform.InstanceSpec) (record, error) {
	dir, err := filepath.Abs(filepath.Join(s.Dir, s.WorkDir))
	if err != nil {
		return record{}, fmt.Errorf("working directory: %w", err)
	}
	if st, err := os.Stat(dir); err != nil {
		return record{}, fmt.Errorf("working directory: %w", err)
	} else if !st.IsDir() {
		return record{}, fmt.Errorf("working directory %s is not a directory", dir)
	}
	if len(s.Command) == 0 {
		return record{}, errors.New("the command is empty")
	}
	if err := checkSignal(s.StopSignal); err != nil {
		return record{}, err
	}
	if err := checkUser(s.User, dir); err != nil {
		return record{}, err
	}
	port, release, err := p.allocatePort()
	if err != nil {
		return record{}, err
	}
	defer func() { release() }() // once the record exists, it holds the port
	argv, env, err := environment(s, port, os.LookupEnv, os.Environ())
	if err != nil {
		return record{}, err
	}
	if p.opts.ShimPerFleet && instanceMarker(env) == "" {
		// What tells this instance's daemons from its fleet's others.
		env = append(env, "BG_INSTANCE="+s.ID)
	}
	path, err := resolveCommand(argv[0], dir, env)
	if err != nil {
		return record{}, fmt.Errorf("command %q: %w", s.Command[0], err)
	}
	stopSignal := s.StopSignal
	if stopSignal == "" {
		stopSignal = "SIGTERM"
	}
	rec, err := p.runShim(ctx, shimConfig{
		Record: record{
			ID: s.ID, App: s.App, Revision: s.Revision, Fleet: s.Fleet, Service: s.Service, Index: s.Index,
			Host: p.opts.Host, Port: port, StopSignal: stopSignal, StopTimeout: s.StopTimeout,
		},
		Dir: dir, Path: path, Argv: argv, Env: env, User: s.User,
		RecordPath: p.files.recordPath(s.ID), ExitPath: p.files.exitPath(s.ID),
		LogPath: p.files.logPath(s.ID), LogMaxBytes: p.opts.LogMaxBytes, LogKeep: p.opts.LogKeep,
	})
	var unanswered *shimUnanswered
	switch {
	case err == nil:
		p.index(rec) // before the port is released: the record now holds it
	case errors.As(err, &unanswered):
		// The fleet's shim may still start the app on this port: it stays
		// promised until the shim's record or its end says what became
		// of the launch.
		keep := release
		release = func() {}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.settle(s.ID, unanswered.pid, unanswered.ticks, keep)
		}()
	}
	return rec, err
}

// runShim has a shim start the app: a new shim of its own, or with
// Options.ShimPerFleet the shim of its fleet, started with the fleet's
// first instance.
func (p *Platform) runShim(ctx context.Context, c shimConfig) (record, error) {
	if err := os.Remove(c.ExitPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return record{}, err
	}
	if !p.opts.ShimPerFleet {
		return p.startShim(ctx, c)
	}
	c.Shared = true
	// One shim start at a time per fleet, so that its instances launched
	// together share one.
	unlock := p.locks.Lock("shim:" + fleetKey(c.Record))
	defer unlock()
	if pid, ticks, ok := p.fleetShim(c.Record); ok {
		rec, err := p.launchOnShim(ctx, pid, ticks, c)
		if !errors.Is(err, errShimClosing) {
			return rec, err
		}
	}
	return p.startShim(ctx, c)
}

// fleetKey names the fleet of an instance: its app, revision and fleet.
func fleetKey(r record) string {
	return r.App + "/" + strconv.FormatInt(r.Revision, 10) + "/" + r.Fleet
}

// fleetShim finds the running shim of rec's fleet among the records.
func (p *Platform) fleetShim(rec record) (pid int, ticks uint64, ok bool) {
	key := fleetKey(rec)
	p.mu.Lock()
	var cands []record
	for id := range p.byApp[rec.App] {
		if r := p.recs[id]; r.ShimShared && fleetKey(r) == key {
			cands = append(cands, r)
		}
	}
	p.mu.Unlock()
	for _, r := range cands {
		if alive(r.ShimPID, r.ShimStartTicks) {
			return r.ShimPID, r.ShimStartTicks, true
		}
	}
	return 0, 0, false
}

// launchOnShim gives c to the running shim of its fleet. errShimClosing
// means it took nothing, being gone or about to end.
func (p *Platform) launchOnShim(ctx context.Context, pid int, ticks uint64, c shimConfig) (record, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.StartTimeout)
	defer cancel()
	var msg readyMsg
	err := askShim(ctx, pid, ticks, shimRequest{Launch: &c}, &msg)
	var errno syscall.Errno
	var unanswered *shimUnanswered
	switch {
	case errors.As(err, &errno) && errno == syscall.ECONNREFUSED:
		return record{}, errShimClosing // it closed its socket
	case errors.As(err, &unanswered):
		unanswered.pid, unanswered.ticks = pid, ticks
		return record{}, fmt.Errorf("asking the fleet's shim %d: %w", pid, err)
	case err != nil:
		return record{}, fmt.Errorf("asking the fleet's shim %d: %w", pid, err)
	case msg.Closing:
		return record{}, errShimClosing
	case msg.Error != "":
		return record{}, errors.New(msg.Error)
	case msg.Record == nil:
		return record{}, fmt.Errorf("the fleet's shim %d sent no record", pid)
	}
	return *msg.Record, nil
}

// settle waits, for a launch the fleet's shim was asked for but did not
// answer in time, until the shim has written the instance's record (which
// then holds its port) or has ended, and only then releases the port.
func (p *Platform) settle(id string, shimPID int, shimTicks uint64, release func()) {
	defer release()
	deadline := time.Now().Add(2 * p.opts.StartTimeout)
	tick := time.NewTicker(p.opts.Poll)
	defer tick.Stop()
	for time.Now().Before(deadline) && alive(shimPID, shimTicks) {
		if rec, err := p.files.readRecord(id); err == nil && rec.ShimPID == shimPID {
			unlock := p.lockID(id)
			p.track(id)
			unlock()
			return
		}
		select {
		case <-p.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// startShim starts a shim in a session of its own, hands it the
// configuration and waits for its word that the app runs.
func (p *Platform) startShim(ctx context.Context, c shimConfig) (record, error) {
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return record{}, err
	}
	defer cfgW.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		return record{}, err
	}
	defer readyR.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		cfgR.Close()
		readyW.Close()
		return record{}, err
	}
	argv := append(slices.Clone(p.opts.Shim), c.Record.ID)
	proc, err := os.StartProcess(argv[0], argv, &os.ProcAttr{
		Dir:   "/", // hold no directory of the server's busy
		Files: []*os.File{cfgR, devnull, devnull, readyW},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	cfgR.Close()
	readyW.Close()
	devnull.Close()
	if err != nil {
		return record{}, fmt.Errorf("starting the instance shim %s: %w", argv[0], err)
	}
	shimPID := proc.Pid
	proc.Release() // reaped by p.reap, without a goroutine per shim
	p.mu.Lock()
	p.children[shimPID] = true
	p.mu.Unlock()

	fail := func(err error) (record, error) {
		syscall.Kill(shimPID, syscall.SIGKILL) // Pdeathsig takes the app with it
		return record{}, err
	}
	if err := json.NewEncoder(cfgW).Encode(c); err != nil {
		return fail(fmt.Errorf("configuring the instance shim: %w", err))
	}
	cfgW.Close()

	deadline := time.Now().Add(p.opts.StartTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	readyR.SetReadDeadline(deadline)
	line, err := bufio.NewReader(readyR).ReadBytes('\n')
	if err != nil {
		return fail(fmt.Errorf("waiting for the instance shim: %w", err))
	}
	var msg readyMsg
	if err := json.Unmarshal(line, &msg); err != nil {
		return fail(fmt.Errorf("reading the instance shim's answer: %w", err))
	}
	if msg.Error != "" {
		return record{}, errors.New(msg.Error)
	}
	if msg.Record == nil {
		return fail(errors.New("the instance shim sent no record"))
	}
	return *msg.Record, nil
}

// checkUser makes sure the app can be started as u, in dir: a platform not
// running as root can start processes only as its own user, and u must be
// able to reach its working directory. Saying so here is clearer than the
// "operation not permitted" the shim would meet.
func checkUser(u *platform.User, dir string) error {
	if u == nil {
		return nil
	}
	if euid := uint32(os.Geteuid()); euid != 0 && (u.UID != euid || u.GID != uint32(os.Getegid())) {
		return fmt.Errorf("cannot start the app as %s: the server runs as uid %d, not root", u, euid)
	}
	if err := runas.Reach(dir, *u); err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	return nil
}
