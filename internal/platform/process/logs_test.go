package process

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/platformtest"
)

func TestLogRotation(t *testing.T) {
	opts := testOptions(t.TempDir())
	opts.LogMaxBytes, opts.LogKeep = 64<<10, 2
	p := newTestPlatform(t, opts)
	in := launch(t, p, appSpec(t, "rotate-0", nil))
	platformtest.WaitServing(t, in)
	// 3000 lines of 100 bytes: 300 kB, over four times the limit.
	if _, err := platformtest.Get(in.Address, "/print?n=3000&size=100&tag=bulk"); err != nil {
		t.Fatal(err)
	}
	waitLogs(t, p, in.ID, "bulk line 3000.")
	log := p.files.logPath(in.ID)
	for _, name := range []string{log, log + ".1", log + ".2"} {
		st, err := os.Stat(name)
		if err != nil {
			t.Errorf("rotation: %v", err)
			continue
		}
		if st.Size() > opts.LogMaxBytes {
			t.Errorf("%s is %d bytes, over the limit of %d", name, st.Size(), opts.LogMaxBytes)
		}
	}
	if _, err := os.Stat(log + ".3"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("more than LogKeep rotated files are kept: %v", err)
	}
	// The ring followed the file across rotations without a gap.
	tail := readLogs(t, p, in.ID, 0)
	lines := strings.Split(strings.TrimSuffix(tail, "\n"), "\n")
	for i, l := range lines[len(lines)-900:] {
		if want := fmt.Sprintf("bulk line %d.", 2101+i); !strings.HasPrefix(l, want) {
			t.Fatalf("line %d of the tail is %q, want %q...", i, l, want)
		}
	}
}

func TestRingBounded(t *testing.T) {
	state := t.TempDir()
	opts := testOptions(state)
	opts.RingLines = 50
	p := newTestPlatform(t, opts)
	in := launch(t, p, appSpec(t, "ring-0", nil))
	platformtest.WaitServing(t, in)
	if _, err := platformtest.Get(in.Address, "/print?n=500&tag=many"); err != nil {
		t.Fatal(err)
	}
	waitLogs(t, p, in.ID, "many line 500\n")
	check := func(p *Platform, when string) {
		t.Helper()
		all := strings.Split(strings.TrimSuffix(readLogs(t, p, in.ID, 0), "\n"), "\n")
		if len(all) != 50 || all[0] != "many line 451" || all[49] != "many line 500" {
			t.Errorf("%s: ring holds %d lines, %q..%q; want the last 50", when, len(all), all[0], all[len(all)-1])
		}
		if got := readLogs(t, p, in.ID, 2); got != "many line 499\nmany line 500\n" {
			t.Errorf("%s: Tail 2 = %q", when, got)
		}
		if got := readLogs(t, p, in.ID, 1000); got != readLogs(t, p, in.ID, 0) {
			t.Errorf("%s: Tail over the ring's size differs from all of it", when)
		}
	}
	check(p, "running")
	// A new platform value rebuilds the ring from the end of the file.
	check(newTestPlatform(t, opts), "rebuilt")
}

// TestLogsAfterStop reads a stopped instance's output from its files until
// RemoveLogs deletes them.
func TestLogsAfterStop(t *testing.T) {
	p := newTestPlatform(t, testOptions(t.TempDir()))
	in := launch(t, p, appSpec(t, "after-0", nil))
	platformtest.WaitServing(t, in)
	if err := p.RemoveLogs(in.ID); err == nil {
		t.Errorf("RemoveLogs of a running instance succeeded")
	}
	if err := p.Stop(testCtx(t), in.ID, -1); err != nil {
		t.Fatal(err)
	}
	if got := readLogs(t, p, in.ID, 1); got != "stopped\n" {
		t.Errorf("last line after Stop = %q, want the app's last words", got)
	}
	if err := p.RemoveLogs(in.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Logs(testCtx(t), in.ID, platform.LogOptions{}); !errors.Is(err, platform.ErrNotFound) {
		t.Errorf("Logs after RemoveLogs: %v, want ErrNotFound", err)
	}
}
