package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/runas"
)

// shimConfig is what the server hands the shim on its standard input. It
// travels on a pipe rather than on the command line because Env may hold
// secrets, and /proc/PID/cmdline is readable by every user.
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
}

// readyMsg is the shim's one message to the server, on file descriptor 3:
// the record of the started app, or why it could not start.
type readyMsg struct {
	Record *record `json:"record,omitempty"`
	Error  string  `json:"error,omitempty"`
}

// Requests the server sends the shim. The shim relays them to the app's
// process group only while the app is its unreaped child, when the group's
// ID cannot have been reused by an unrelated process.
const (
	shimStop = syscall.SIGTERM // send the instance's stop signal
	shimKill = syscall.SIGUSR1 // send SIGKILL
)

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER from <linux/prctl.h>.
const prSetChildSubreaper = 36

// leftoverWait bounds how long the shim waits for the app's output to end
// after every process it could kill is gone.
const leftoverWait = 5 * time.Second

// RunShim is the main function of the instance shim (the hidden
// "bluegreen instance-shim ID" command). It reads a configuration from
// standard input, starts the app in a process group of its own, copies the
// app's output to the rotated log, relays stop requests, and when the app
// has exited kills whatever it left behind, flushes the log, writes the exit
// status and returns. args is the instance ID, there only to name the shim
// in ps; the return value is the shim's own exit code.
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

	// Pdeathsig belongs to the thread that started the child: keep this
	// goroutine on its thread for the shim's whole life.
	runtime.LockOSThread()
	// Orphans among the app's descendants (daemons that double-fork) become
	// children of the shim instead of init, so none outlives the instance.
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		return shimFail(ready, fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", e))
	}
	// Caught, not ignored: an ignored signal would stay ignored in the app.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGCHLD, shimStop, shimKill, syscall.SIGINT, syscall.SIGHUP,
		syscall.SIGQUIT, syscall.SIGUSR2, syscall.SIGWINCH)

	logw, err := openRotating(c.LogPath, c.LogMaxBytes, c.LogKeep)
	if err != nil {
		return shimFail(ready, fmt.Errorf("opening log: %w", err))
	}
	pid, out, err := startApp(c)
	if err != nil {
		logw.Close()
		return shimFail(ready, err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		buf := make([]byte, 32<<10)
		if _, err := io.CopyBuffer(logw, out, buf); err != nil && !errors.Is(err, os.ErrClosed) {
			fmt.Fprintf(logw, "\nbluegreen instance-shim: copying output: %v\n", err)
		}
	}()

	rec, err := recordStarted(c, pid)
	if err != nil {
		syscall.Kill(-pid, syscall.SIGKILL)
		shimFail(ready, err)
	} else {
		msg, _ := json.Marshal(readyMsg{Record: &rec})
		ready.Write(append(msg, '\n')) // the server may be gone already: nothing to do about it
		ready.Close()
	}

	status := superviseApp(pid, signalByName(c.Record.StopSignal), sigs)
	killLeftovers(sigs)
	select {
	case <-copied:
	case <-time.After(leftoverWait):
		out.Close() // someone outside the instance holds the pipe; stop waiting
		<-copied
	}
	if err := logw.Close(); err != nil {
		return 1
	}
	if rec.PID == 0 {
		return 1
	}
	if err := writeJSON(c.ExitPath, exitStatusOf(status)); err != nil {
		return 1
	}
	return 0
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
	p.Release() // reaped by superviseApp with wait4
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
	if err := writeJSON(c.RecordPath, rec); err != nil {
		return record{}, fmt.Errorf("writing the instance record: %w", err)
	}
	return rec, nil
}

// superviseApp reaps children until the app itself is reaped, relaying the
// server's stop and kill requests to the app's process group meanwhile.
// Everything happens on this one goroutine, so a request is never relayed
// after the app was reaped.
func superviseApp(pid int, stopSig syscall.Signal, sigs <-chan os.Signal) syscall.WaitStatus {
	for {
		for {
			var ws syscall.WaitStatus
			wpid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if wpid == pid {
				return ws
			}
			if wpid <= 0 || err != nil {
				break
			}
		}
		switch <-sigs {
		case shimStop:
			syscall.Kill(-pid, stopSig)
		case shimKill:
			syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
}

// killLeftovers SIGKILLs the shim's remaining children until none is left.
// Because the shim is a subreaper, every descendant of the app becomes its
// child once its own parent is gone, so repeating this reaches them all.
func killLeftovers(sigs <-chan os.Signal) {
	self := os.Getpid()
	for {
		for _, pid := range childrenOf(self) {
			syscall.Kill(pid, syscall.SIGKILL)
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

func exitStatusOf(ws syscall.WaitStatus) exitStatus {
	e := exitStatus{Code: ws.ExitStatus(), ExitedAt: time.Now().UTC()}
	if ws.Signaled() {
		e.Code = 128 + int(ws.Signal())
		e.Signal = signalName(ws.Signal())
	}
	return e
}
