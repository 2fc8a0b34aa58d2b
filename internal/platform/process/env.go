package process

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/instanceenv"
)

// passedThrough are the server's environment variables an instance inherits.
// The rest of the server's environment (its own secrets, credentials of the
// machine's operator) stays out; a spec that needs more names it in its env,
// as "${NAME}".
var passedThrough = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR"}

// environment builds an instance's argv and environment. Command and Env are
// expanded from PORT, Vars and the server's environment, in that order.
// The instance gets the passed-through variables and LC_* (HOME, USER and
// LOGNAME of s.User when set), then Vars, then the expanded Env, then PORT,
// each overriding the ones before.
func environment(s platform.InstanceSpec, port int, getenv func(string) (string, bool), serverEnv []string) ([]string, []string, error) {
	x := instanceenv.New(s, port, getenv)
	argv, err := x.Args("command", s.Command)
	if err != nil {
		return nil, nil, err
	}
	base := map[string]string{}
	for _, kv := range serverEnv {
		k, v, _ := strings.Cut(kv, "=")
		if slices.Contains(passedThrough, k) || strings.HasPrefix(k, "LC_") {
			base[k] = v
		}
	}
	if _, ok := base["TMPDIR"]; !ok {
		// The revision is read-only to the app: it writes its files here.
		base["TMPDIR"] = "/tmp"
	}
	if s.User != nil {
		s.User.SetEnv(base) // not the server's HOME and USER
	}
	env, err := x.Environment(base)
	if err != nil {
		return nil, nil, err
	}
	return argv, instanceenv.List(env), nil
}

// resolveCommand finds the program the way a shell would, but relative to
// the instance's working directory: a name with a slash is a path (relative
// to dir), a bare name is looked up in the instance's PATH. Checking here
// rather than in the shim gives a clear error before anything starts.
func resolveCommand(name, dir string, env []string) (string, error) {
	if name == "" {
		return "", errors.New("the command is empty")
	}
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		return p, checkExecutable(p)
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		p := filepath.Join(d, name)
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in PATH %q", name, path)
}

func checkExecutable(p string) error {
	st, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: no such file", p)
	case err != nil:
		return err
	case st.IsDir():
		return fmt.Errorf("%s: is a directory", p)
	case st.Mode()&0o111 == 0:
		return fmt.Errorf("%s: not executable", p)
	}
	return nil
}

// signals are the stop signals a spec may name (spec.StopSignals).
var signals = map[string]syscall.Signal{
	"SIGTERM":  syscall.SIGTERM,
	"SIGINT":   syscall.SIGINT,
	"SIGQUIT":  syscall.SIGQUIT,
	"SIGHUP":   syscall.SIGHUP,
	"SIGUSR1":  syscall.SIGUSR1,
	"SIGUSR2":  syscall.SIGUSR2,
	"SIGWINCH": syscall.SIGWINCH,
	"SIGKILL":  syscall.SIGKILL,
}

// signalByName maps a stop signal's name to the signal; "" is SIGTERM.
func signalByName(name string) syscall.Signal {
	if s, ok := signals[name]; ok {
		return s
	}
	return syscall.SIGTERM
}

func checkSignal(name string) error {
	if _, ok := signals[name]; !ok && name != "" {
		return fmt.Errorf("unknown stop signal %q", name)
	}
	return nil
}

func signalName(s syscall.Signal) string {
	for name, v := range signals {
		if v == s {
			return name
		}
	}
	return "signal " + strconv.Itoa(int(s))
}
