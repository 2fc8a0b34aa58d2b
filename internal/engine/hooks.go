package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"bluegreen/internal/params"
	"bluegreen/internal/platform"
)

// hookOutputLimit bounds how much of a hook's output goes into the event
// log: the last bytes are kept, where failures usually explain themselves.
const hookOutputLimit = 16 << 10

// command is one shell command line run for a hook or a command check.
type command struct {
	Run     string
	Dir     string
	Env     map[string]string
	Timeout time.Duration
	// Started, when set, is told the command's process group once it runs;
	// the func it returns is called when the group is gone.
	Started func(pgid int) (done func())
	// User, when set, names HOME, USER and LOGNAME; Credential, when set,
	// is the identity the command runs as (nil: the server's own).
	User       *platform.User
	Credential *syscall.Credential
	// Redact hides known secrets in Output (nil: nothing is hidden).
	Redact *params.Redactor
}

// commandResult is how a command ended.
type commandResult struct {
	ExitCode int // -1 when it did not exit by itself (timeout, signal)
	TimedOut bool
	Took     time.Duration
	Output   string // stdout and stderr interleaved, the last hookOutputLimit bytes, redacted
	Err      error  // could not start, timed out, or exited non-zero
}

// runCommand runs c with /bin/sh -c in its own process group, so that a
// timeout kills everything the command started, not only the shell.
func runCommand(ctx context.Context, c command) commandResult {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	cmd := exec.Command("/bin/sh", "-c", c.Run)
	cmd.Dir = c.Dir
	cmd.Env = environ(c.Env, c.User)
	cmd.Stdin = nil
	out := &tailBuffer{limit: hookOutputLimit}
	cmd.Stdout, cmd.Stderr = out, out
	// Pdeathsig: a hook must not outlive a server that was killed; the
	// restarted server runs the event's hooks again. Go sets it after the
	// credential, whose change would otherwise clear it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: c.Credential}
	if err := cmd.Start(); err != nil {
		return commandResult{ExitCode: -1, Took: time.Since(start), Err: fmt.Errorf("starting %q: %w", c.Run, err)}
	}
	if c.Started != nil {
		defer c.Started(cmd.Process.Pid)()
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	timedOut := false
	select {
	case err = <-done:
	case <-ctx.Done():
		timedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = <-done
	}
	// Children left in the group (a backgrounded process) must not outlive
	// the command either.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	r := commandResult{ExitCode: cmd.ProcessState.ExitCode(), TimedOut: timedOut, Took: time.Since(start), Output: out.text(c.Redact)}
	switch {
	case timedOut:
		r.Err = fmt.Errorf("%q timed out after %s", c.Run, c.Timeout)
	case ctx.Err() != nil:
		r.Err = fmt.Errorf("%q stopped: %w", c.Run, context.Cause(ctx))
	case err != nil:
		r.Err = fmt.Errorf("%q exited with status %d", c.Run, r.ExitCode)
	}
	return r
}

// environ is the command's environment: the server's PATH and a few
// basics, HOME, USER and LOGNAME of the user it runs as, then env. Hooks get
// what they are documented to get, not the server's whole environment
// (which may hold its own secrets).
func environ(env map[string]string, u *platform.User) []string {
	all := map[string]string{}
	for _, k := range []string{"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER"} {
		if v, ok := os.LookupEnv(k); ok {
			all[k] = v
		}
	}
	if _, ok := all["TMPDIR"]; !ok {
		all["TMPDIR"] = "/tmp" // the revision is read-only to the hook
	}
	if u != nil {
		u.SetEnv(all)
	}
	maps.Copy(all, env)
	out := make([]string, 0, len(all))
	for _, k := range slices.Sorted(maps.Keys(all)) {
		out = append(out, k+"="+all[k])
	}
	return out
}

// tailBuffer keeps the last limit bytes written to it.
type tailBuffer struct {
	limit   int
	buf     bytes.Buffer
	dropped int64
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	b.buf.Write(p)
	if over := b.buf.Len() - b.limit; over > 0 {
		b.dropped += int64(over)
		b.buf.Next(over)
	}
	return n, nil
}

// text is what was kept, with known secrets hidden; when the start was
// dropped, so is the rest of a secret it may have cut.
func (b *tailBuffer) text(red *params.Redactor) string {
	kept := b.buf.String()
	if b.dropped > 0 {
		cut := red.TailStart(kept)
		return fmt.Sprintf("[%d earlier bytes not kept]\n%s", b.dropped+int64(cut), red.Redact(kept[cut:]))
	}
	return red.Redact(kept)
}
