package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"bluegreen/internal/testwait"
)

// The README's run command, as a newcomer runs it: it must finish with
// zero failed requests and leave nothing running, and nothing behind in
// the temporary directory.
func TestQuickstart(t *testing.T) {
	dir := passableTempDir(t)
	cmd := exec.Command(bin.bluegreen, "quickstart")
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("quickstart: %v\n%s", err, out)
	}
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Errorf("the quickstart left %d entries in its temporary directory %s", len(left), dir)
	}
	text := string(out)
	for _, want := range []string{
		`failed requests:  0\n`,
		`requests served:  \d+ \(\d+ by v1, \d+ by v2\)`,
		`traffic steps:    10% at \+0\.0s, 50% at \+\d+\.\ds, 100% at \+\d+\.\ds`,
		`switch took:      \d+\.\ds`,
		`Succeeded +blue retired`,
	} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("the summary lacks %q:\n%s", want, text)
		}
	}
	// Everything it started is stopped.
	testwait.For(t, 10*time.Second, "nothing of the quickstart to run", func() bool {
		return len(processes(t, func(d string) bool {
			exe, err := os.Readlink(filepath.Join(d, "exe"))
			return err == nil && strings.HasPrefix(exe, dir+string(filepath.Separator))
		})) == 0
	})
	t.Logf("%s", text[strings.Index(text, "Summary"):])
}

// Ctrl-C in the middle stops everything the quickstart started.
func TestQuickstartInterrupted(t *testing.T) {
	dir := filepath.Join(passableTempDir(t), "qs")
	out := &lockedBuffer{}
	cmd := exec.Command(bin.bluegreen, "quickstart", "--dir", dir)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	testwait.For(t, 60*time.Second, "the canary to start", func() bool { return strings.Contains(out.String(), "green 0% → 10%") })
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(out.String(), "interrupted; everything it started is stopped") {
			t.Fatalf("after Ctrl-C: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the quickstart did not stop after Ctrl-C:\n%s", out.String())
	}
	if n := len(processes(t, func(d string) bool {
		exe, err := os.Readlink(filepath.Join(d, "exe"))
		return err == nil && strings.HasPrefix(exe, dir+string(filepath.Separator))
	})); n != 0 {
		t.Fatalf("%d processes of the quickstart still run after Ctrl-C", n)
	}
}
