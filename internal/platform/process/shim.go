package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/runas"
)

// shimConfig is what the server hands the shim on its standard input (and a
// shim of a fleet on its socket, for each further instance). It travels on
// a pipe rather than on the command line because Env may hold secrets, and
// /proc/PID/cmdline is readable by every user.
type shimConfig struct {
	Record record   `json:"record"` // without the PIDs and start times
	Dir    string   `json:"dir"`
	Path   string   `json:"path"` // the resolved executable
	Argv   []string `json:"argv"`
	Env    []string `json:"env"`
	// User is who the app runs as; nil: as the shim itself.
	User        *platform.User `json:"user,omitempty"`
	RecordPath  string         `json:"record_path"`
	ExitPath    string         `json:"exit_path"`
	LogPath     string         `json:"log_path"`
	LogMaxBytes int64          `json:"log_max_bytes"`
	LogKeep     int            `json:"log_keep"`
	// Shared makes the shim one of a fleet (see fleetshim.go): it takes
	// further instances of the fleet on its socket and ends with the last.
	Shared bool `json:"shared,omitempty"`
}

// readyMsg is the shim's answer to a launch, on file descriptor 3 (or on
// the socket of a fleet's shim): the record of the started app, or why it
// could not start.
type readyMsg struct {
	Record *record `json:"record,omitempty"`
	Error  string  `json:"error,omitempty"`
	// Closing says that a fleet's shim is ending and took nothing: the
	// instance goes to a new shim.
	Closing bool `json:"closing,omitempty"`
}

// Requests the server sends the shim of one instance. The shim relays them
// to the app's process group only while the app is its unreaped child, when
// the group's ID cannot have been reused by an unrelated process.
const (
	shimStop = syscall.SIGTERM // send the instance's stop signal
	shimKill = syscall.SIGUSR1 // send SIGKILL
)

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER from <linux/prctl.h>.
const prSetChildSubreaper = 36

// leftoverWait bounds how long the shim waits for an app's output to end
// after every process it could kill is gone.
const leftoverWait = 5 * time.Second

// RunShim is the main function of the instance shim (the hidden
// "bluegreen instance-shim ID" command). It reads a configuration from
// standard input, starts the app in a process group of its own, copies the
// app's output to the rotated log, relays stop requests, and when the app
// has exited kills whatever it left behind, flushes the log, writes the exit
// status and returns. A shim of a fleet does that for every instance the
// server gives it, and returns after the last. args is the instance ID,
// there only to name the shim in ps; the return value is the shim's own
// exit code.
func RunShim(args []string) int {
	if !isPipe(0) || !isPipe(3) {
		fmt.Fprintln(os.Stderr, "instance-shim: no ready pipe on fd 3; this command is run by bluegreen itself")
		return 2
	}
	ready := os.NewFile(3, "ready")
	syscall.CloseOnExec(3) // the app must not hold the server's pipe open
	var c shimConfig
	if err := json.NewDecoder(os.Stdin).Decode(&c); err != nil {
		return shimFail(ready, fmt.Errorf("reading configuration: %w", err))
	}
	os.Stdin.Close()
	// A shim mostly waits: one thread runs its Go code, and the memory the
	// bluegreen binary's start-up took goes back to the system, since a
	// server may run thousands of shims.
	runtime.GOMAXPROCS(1)
	debug.FreeOSMemory()

	// Pdeathsig belongs to the thread that started the child: keep this
	// goroutine on its thread for the shim's whole life, and start every
	// app from it.
	runtime.LockOSThread()
	// Orphans among the apps' descendants (daemons that double-fork) become
	// children of the shim instead of init, so none outlives its instance.
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		return shimFail(ready, fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", e))
	}
	// Caught, not ignored: an ignored signal would stay ignored in the app.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGCHLD, shimStop, shimKill, syscall.SIGINT, syscall.SIGHUP,
		syscall.SIGQUIT, syscall.SIGUSR2, syscall.SIGWINCH)

	s := &shim{shared: c.Shared, apps: map[int]*shimInstance{}, byID: map[string]*shimInstance{}}
	if s.shared {
		if err := s.listen(); err != nil {
			return shimFail(ready, err)
		}
	}
	in, err := s.start(c)
	if err != nil {
		s.closeListener()
		s.failed.Store(true)
		shimFail(ready, err)
	} else {
		msg, _ := json.Marshal(readyMsg{Record: &in.rec})
		ready.Write(append(msg, '\n')) // the server may be gone already: nothing to do about it
		ready.Close()
	}
	s.run(sigs)
	if s.failed.Load() {
		return 1
	}
	return 0
}

// shim watches the apps it started: one, or the instances of one fleet.
// Everything that starts, signals or reaps a process happens on the run
// goroutine (the locked main thread), so a signal is never sent to a
// process already reaped, whose PID could have been reused.
type shim struct {
	shared bool
	apps   map[int]*shimInstance    // running, by the app's PID
	byID   map[string]*shimInstance // running, by instance ID
	ending []*shimInstance          // exited; their leftovers being killed

	ln      *net.UnixListener // a fleet's shim only
	ops     chan shimOp
	closing chan struct{} // closed when the shim takes no more requests

	finishing sync.WaitGroup // logs being flushed, exit statuses written
	failed    atomic.Bool    // an instance's record, log or exit status could not be written
}

// shimInstance is one app the shim started.
type shimInstance struct {
	cfg    shimConfig
	rec    record // PID 0 when the record could not be written
	pid    int
	marker string // the "BG_INSTANCE=ID" of its environment, or ""
	logw   *rotatingFile
	out    *os.File
	copied chan struct{}
	status syscall.WaitStatus
}

// start starts an app, records it, and starts copying its output.
func (s *shim) start(c shimConfig) (*shimInstance, error) {
	logw, err := openRotating(c.LogPath, c.LogMaxBytes, c.LogKeep)
	if err != nil {
		return nil, fmt.Errorf("opening log: %w", err)
	}
	pid, out, err := startApp(c)
	if err != nil {
		logw.Close()
		return nil, err
	}
	in := &shimInstance{cfg: c, pid: pid, logw: logw, out: out, copied: make(chan struct{}), marker: instanceMarker(c.Env)}
	go func() {
		defer close(in.copied)
		buf := make([]byte, 32<<10)
		if _, err := io.CopyBuffer(logw, out, buf); err != nil && !errors.Is(err, os.ErrClosed) {
			fmt.Fprintf(logw, "\nbluegreen instance-shim: copying output: %v\n", err)
		}
	}()
	s.apps[pid] = in
	rec, err := recordStarted(c, pid)
	if err != nil {
		// Still the shim's unreaped child: its group is its own.
		syscall.Kill(-pid, syscall.SIGKILL)
		return nil, err
	}
	in.rec = rec
	s.byID[c.Record.ID] = in
	return in, nil
}

// run reaps, relays requests and finishes the instances until none is left.
func (s *shim) run(sigs <-chan os.Signal) {
	for {
		s.reap()
		s.killLeftovers()
		if len(s.apps) == 0 && len(s.ending) == 0 {
			break
		}
		var retry <-chan time.Time
		if len(s.ending) > 0 {
			// A look again for leftovers not yet dead, or not yet moved
			// below the shim, if no SIGCHLD comes first.
			retry = time.After(10 * time.Millisecond)
		}
		select {
		case sig := <-sigs:
			if !s.shared && (sig == shimStop || sig == shimKill) {
				for _, in := range s.apps {
					s.signal(in, sig)
				}
			}
		case op := <-s.ops:
			op.reply <- s.serve(op.req)
		case <-retry:
		}
	}
	s.closeListener()
	s.finishing.Wait()
	// What is left below the shim belonged to an instance it could not tell
	// (a daemon that left its group and cleared its environment): it ends
	// with the shim.
	killChildren(sigs)
}

// signal relays a stop or kill request to an app that is still running.
func (s *shim) signal(in *shimInstance, req os.Signal) {
	if req == shimKill {
		syscall.Kill(-in.pid, syscall.SIGKILL)
		return
	}
	syscall.Kill(-in.pid, signalByName(in.cfg.Record.StopSignal))
}

// reap collects every child that has exited. An app's end moves its
// instance to ending; other children are its leftovers, being killed.
func (s *shim) reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		if in, ok := s.apps[pid]; ok {
			in.status = ws
			delete(s.apps, pid)
			if s.byID[in.cfg.Record.ID] == in {
				delete(s.byID, in.cfg.Record.ID)
			}
			s.ending = append(s.ending, in)
		}
	}
}

// killLeftovers SIGKILLs the live children of the shim that belong to an
// instance whose app has exited, and finishes each instance that has none
// left. Because the shim is a subreaper, every descendant of an app becomes
// its child once its own parent is gone, so repeating this reaches them all.
// A shim of one instance counts every child as that instance's.
func (s *shim) killLeftovers() {
	if len(s.ending) == 0 {
		return
	}
	kids := liveChildren()
	still := s.ending[:0]
	for _, in := range s.ending {
		n := 0
		for _, k := range kids {
			if s.owns(in, k) {
				syscall.Kill(k.pid, syscall.SIGKILL) // unreaped: the PID is still this child's
				n++
			}
		}
		if n > 0 {
			still = append(still, in)
			continue
		}
		s.finishing.Add(1)
		go s.finish(in)
	}
	clear(s.ending[len(still):])
	s.ending = still
}

// owns reports whether the shim's child k belongs to in: in a shim of one
// instance every child does; in a fleet's, a child still in the app's
// process group, or whose environment is the instance's (daemons that
// started sessions of their own keep it unless they clear it).
func (s *shim) owns(in *shimInstance, k child) bool {
	if !s.shared {
		return true
	}
	if _, app := s.apps[k.pid]; app {
		// Another instance's app, even one started since with the
		// reaped app's PID (a PID, and so a group ID, is reused once the
		// group is empty).
		return false
	}
	return k.pgid == in.pid || (in.marker != "" && hasEnv(k.pid, in.marker))
}

// finish waits for the app's last output, closes its log and writes its
// exit status.
func (s *shim) finish(in *shimInstance) {
	defer s.finishing.Done()
	select {
	case <-in.copied:
	case <-time.After(leftoverWait):
		in.out.Close() // someone outside the instance holds the pipe; stop waiting
		<-in.copied
	}
	if err := in.logw.Close(); err != nil {
		s.failed.Store(true)
		return
	}
	if in.rec.PID == 0 {
		s.failed.Store(true)
		return
	}
	if err := writeJSON(in.cfg.ExitPath, exitStatusOf(in.status)); err != nil {
		s.failed.Store(true)
	}
}

// killChildren SIGKILLs the shim's remaining children until none is left.
func killChildren(sigs <-chan os.Signal) {
	for {
		for _, k := range liveChildren() {
			syscall.Kill(k.pid, syscall.SIGKILL)
		}
		for {
			wpid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if errors.Is(err, syscall.ECHILD) {
				return
			}
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if wpid <= 0 || err != nil {
				break
			}
		}
		select { // the next SIGCHLD, or a look again for children not yet dead
		case <-sigs:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// isPipe reports whether fd is open on a pipe, as the server's are: the
// shim must not write to, or close, whatever else a person's shell left there.
func isPipe(fd int) bool {
	var st syscall.Stat_t
	return syscall.Fstat(fd, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFIFO
}

func shimFail(ready *os.File, err error) int {
	msg, _ := json.Marshal(readyMsg{Error: err.Error()})
	ready.Write(append(msg, '\n'))
	ready.Close()
	return 1
}

// startApp starts the app with its stdout and stderr on one pipe, so the log
// keeps the order in which lines were written.
func startApp(c shimConfig) (int, *os.File, error) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return 0, nil, err
	}
	defer devnull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return 0, nil, err
	}
	defer w.Close()
	// The shim stays the server's user (it writes the log and the record,
	// which the app must not read); the app gets its own identity. Go sets
	// Pdeathsig after changing it, so the change does not clear it.
	sys := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if u := c.User; u != nil && (u.UID != uint32(os.Geteuid()) || u.GID != uint32(os.Getegid())) {
		sys.Credential = runas.Credential(*u)
	}
	p, err := os.StartProcess(c.Path, c.Argv, &os.ProcAttr{
		Dir:   c.Dir,
		Env:   c.Env,
		Files: []*os.File{devnull, w, w},
		Sys:   sys,
	})
	if err != nil {
		r.Close()
		return 0, nil, fmt.Errorf("starting %s: %w", c.Path, err)
	}
	pid := p.Pid
	p.Release() // reaped by the shim's run loop with wait4
	return pid, r, nil
}

// recordStarted writes the instance's record now that the app runs.
func recordStarted(c shimConfig, pid int) (record, error) {
	rec := c.Record
	st, err := readStat(pid) // a zombie's stat is still there: the app is not reaped yet
	if err != nil {
		return record{}, fmt.Errorf("reading the app's start time: %w", err)
	}
	self, err := readStat(os.Getpid())
	if err != nil {
		return record{}, fmt.Errorf("reading the shim's start time: %w", err)
	}
	rec.PID, rec.StartTicks, rec.StartedAt = pid, st.StartTicks, startedAt(st.StartTicks)
	rec.ShimPID, rec.ShimStartTicks = os.Getpid(), self.StartTicks
	rec.ShimShared = c.Shared
	if err := writeJSON(c.RecordPath, rec); err != nil {
		return record{}, fmt.Errorf("writing the instance record: %w", err)
	}
	return rec, nil
}

func exitStatusOf(ws syscall.WaitStatus) exitStatus {
	e := exitStatus{Code: ws.ExitStatus(), ExitedAt: time.Now().UTC()}
	if ws.Signaled() {
		e.Code = 128 + int(ws.Signal())
		e.Signal = signalName(ws.Signal())
	}
	return e
}
