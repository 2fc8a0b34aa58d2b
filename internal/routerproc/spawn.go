package routerproc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"bluegreen/internal/router"
)

// logTailBytes is how much of router.log an error about a failed start quotes.
const logTailBytes = 2048

// ensure adopts the router that answers on the socket or starts one, and
// reports which. The caller holds s.mu; a lock file keeps two supervisors on
// the same directory from starting two routers.
func (s *Supervisor) ensure(ctx context.Context) (adopted bool, err error) {
	unlock, err := lockDir(s.opts.Dir)
	if err != nil {
		return false, err
	}
	defer unlock()

	if gen, err := s.probe(ctx); err == nil {
		s.adopt(gen)
		return true, nil
	}
	if err := s.ensureRouteFile(); err != nil {
		return false, err
	}
	pid, exited, err := s.spawn()
	if err != nil {
		return false, err
	}
	gen, err := s.waitReady(ctx, pid, exited)
	if errors.Is(err, errLostRace) {
		s.adopt(gen)
		return true, nil
	}
	if err != nil {
		return false, err
	}
	s.pid.Store(int64(pid))
	s.exited = exited
	s.log.Info("router started", "pid", pid, "generation", gen, "admin", s.admin, "log", s.logs)
	return false, nil
}

func (s *Supervisor) adopt(gen uint64) {
	pid := s.findPid()
	s.pid.Store(int64(pid))
	s.exited = nil
	if pid > 0 && readPidFile(s.pidFn) != pid {
		if err := writeFileAtomic(s.pidFn, []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
			s.log.Warn("recording the router's pid", "err", err)
		}
	}
	s.log.Info("router adopted", "pid", pid, "generation", gen, "admin", s.admin)
}

// ensureRouteFile writes a table with no apps when there is no route file yet;
// an existing one is the last table pushed and is kept.
func (s *Supervisor) ensureRouteFile() error {
	if _, err := os.Stat(s.routes); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("route file: %w", err)
	}
	data, err := encodeRouteFile(&router.Config{Admin: s.admin, Apps: map[string]*router.AppConfig{}})
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.routes, data, 0o600); err != nil {
		return fmt.Errorf("writing the initial route file: %w", err)
	}
	return nil
}

// spawn starts the router in a session of its own, so that signals meant for
// the server's terminal or process group do not reach it, with its output
// going straight to router.log: a pipe to the server would break, and stall
// or kill the router, when the server goes away.
func (s *Supervisor) spawn(extra ...string) (int, <-chan struct{}, error) {
	if err := capLog(s.logs, s.opts.MaxLogBytes); err != nil {
		s.log.Warn("rotating the router log", "err", err)
	}
	out, err := os.OpenFile(s.logs, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, nil, fmt.Errorf("opening the router log: %w", err)
	}
	// The child holds its own copy of the descriptor.
	defer out.Close()
	argv := append(append([]string(nil), s.opts.Command...), "--config", s.routes, "--log-format", "json")
	argv = append(argv, extra...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = s.opts.Dir
	cmd.Stdout, cmd.Stderr = out, out // *os.File: handed over as is, no copying goroutine
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// One JSON line in the router's own format marks where each run begins.
	mark, _ := json.Marshal(struct {
		Time  time.Time `json:"time"`
		Level string    `json:"level"`
		Msg   string    `json:"msg"`
		Argv  []string  `json:"argv"`
	}{time.Now(), "INFO", "starting router process", argv})
	out.Write(append(mark, '\n'))
	if err := cmd.Start(); err != nil {
		return 0, nil, fmt.Errorf("starting the router (%s): %w", argv[0], err)
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	// Reaping the child keeps a dead router from lingering as a zombie that
	// looks alive. The goroutine ends when the router does.
	go func() {
		cmd.Wait()
		close(exited)
	}()
	if err := writeFileAtomic(s.pidFn, []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		s.log.Warn("recording the router's pid", "err", err)
	}
	return pid, exited, nil
}

// errLostRace reports that the router just started exited, while another
// router answers on the socket: someone else started one first.
var errLostRace = errors.New("another router answers on the socket")

// waitReady waits until the started router answers.
func (s *Supervisor) waitReady(ctx context.Context, pid int, exited <-chan struct{}) (uint64, error) {
	deadline := time.NewTimer(s.opts.ReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-exited:
			if gen, err := s.probe(ctx); err == nil {
				return gen, errLostRace
			}
			return 0, fmt.Errorf("the router exited at start (pid %d); the end of %s:\n%s", pid, s.logs, tailFile(s.logs, logTailBytes))
		case <-deadline.C:
			// A router that never answered has served nothing; do not leave it behind.
			signalPid(pid, syscall.SIGKILL)
			return 0, fmt.Errorf("the router (pid %d) did not answer on %s within %s; the end of %s:\n%s",
				pid, s.sock, s.opts.ReadyTimeout, s.logs, tailFile(s.logs, logTailBytes))
		case <-ctx.Done():
			// Left running: it may be about to answer, and the next Start adopts it.
			return 0, fmt.Errorf("waiting for the router (pid %d) to answer: %w", pid, ctx.Err())
		case <-tick.C:
			if gen, err := s.probe(ctx); err == nil {
				return gen, nil
			}
		}
	}
}

// lockDir takes an exclusive lock on the directory's lock file.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(dir+"/"+lockFile, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("router lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("router lock: %w", err)
	}
	return func() { f.Close() }, nil
}
