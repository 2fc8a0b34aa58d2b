package process

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"bluegreen/internal/platform"
)

// appUser is an unused user ID with no account, as the server gives apps.
var appUser = platform.User{UID: 60600, GID: 60600, Home: "/"}

// passableTempDir is a temporary directory other users may pass through
// (not list): the test's own is closed to them.
func passableTempDir(t *testing.T) string {
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// statusField returns a field of /proc/PID/status, e.g. "Uid".
func statusField(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, name)
	return ""
}

// The app runs as the user it is given, with none of the server's groups;
// the shim (the server's user) keeps its log where the app cannot read it,
// and Logs hides the secrets Redact names.
func TestAppRunsAsItsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("starting a process as another user needs root")
	}
	const secret = "s3cret-value-123"
	opts := testOptions(t.TempDir())
	opts.Redact = func() func(string) string {
		return func(s string) string { return strings.ReplaceAll(s, secret, "[redacted]") }
	}
	p := newTestPlatform(t, opts)
	log := p.files.logPath("user-0")
	sp := shSpec("user-0", passableTempDir(t), fmt.Sprintf(
		`echo "home=$HOME user=$${USER-unset} logname=$${LOGNAME-unset}"; `+
			`cat %s >/dev/null 2>&1 && echo "read its log" || echo "cannot read its log"; `+
			`ls %s >/dev/null 2>&1 && echo "listed the state" || echo "cannot list the state"; `+
			`echo "the secret is %s"; echo ready; exec sleep 300`, log, opts.StateDir, secret))
	sp.User = &appUser
	in := launch(t, p, sp)
	waitLogs(t, p, in.ID, "ready")

	for field, want := range map[string]string{"Uid": "60600 60600 60600 60600", "Gid": "60600 60600 60600 60600", "Groups": ""} {
		if got := statusField(t, in.PID, field); got != want {
			t.Errorf("the app's %s: %q, want %q", field, got, want)
		}
	}
	out := readLogs(t, p, in.ID, 0)
	for _, want := range []string{"home=/ user=unset logname=unset", "cannot read its log", "cannot list the state", "the secret is [redacted]"} {
		if !strings.Contains(out, want) {
			t.Errorf("the app's output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, secret) {
		t.Errorf("Logs shows the secret:\n%s", out)
	}
	// A restarted server rebuilds the lines it keeps from the file, hidden
	// the same way.
	again := newTestPlatform(t, opts)
	if out := readLogs(t, again, in.ID, 0); strings.Contains(out, secret) || !strings.Contains(out, "the secret is [redacted]") {
		t.Errorf("after a restart, Logs shows:\n%s", out)
	}
	// The file itself, the server's alone, keeps the output as written.
	info, err := os.Stat(log)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(log)
	if info.Mode().Perm() != 0o600 || !strings.Contains(string(b), secret) {
		t.Errorf("log file: mode %04o; want 0600 with the output as written", info.Mode().Perm())
	}
	for _, d := range []string{opts.StateDir, p.files.logsDir(), p.files.instancesDir()} {
		if info, err := os.Stat(d); err != nil || info.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v; want mode 0700", d, info.Mode().Perm(), err)
		}
	}
}

// A working directory the app's user cannot reach fails Launch, naming the
// directory that stops it, before anything starts.
func TestLaunchRefusesAnUnreachableDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to be asked for another user")
	}
	p := newTestPlatform(t, testOptions(t.TempDir()))
	closed := filepath.Join(passableTempDir(t), "closed")
	dir := filepath.Join(closed, "app")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	sp := shSpec("unreachable-0", dir, "exec sleep 300")
	sp.User = &appUser
	_, err := p.Launch(testCtx(t), sp)
	if err == nil || !strings.Contains(err.Error(), "uid 60600 cannot reach") || !strings.Contains(err.Error(), closed+" has mode 0700") {
		t.Fatalf("Launch in a directory its user cannot reach: %v", err)
	}
	if _, ok := findInstance(t, p, sp.ID); ok {
		t.Error("a refused Launch left an instance behind")
	}
}
