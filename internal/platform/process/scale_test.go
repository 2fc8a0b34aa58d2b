package process

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// List of one app reads that app's records only: a record of another app
// that cannot be read (torn by a crash of the machine, say) neither fails
// nor slows the others, and an app's instances are listed from the index
// that Launch and Stop keep, across a new Platform on the same state.
func TestListReadsOneAppsRecords(t *testing.T) {
	state := t.TempDir()
	p := newTestPlatform(t, testOptions(state))
	a := appSpec(t, "alpha-1-blue-0", nil)
	a.App = "alpha"
	b := appSpec(t, "beta-1-blue-0", nil)
	b.App = "beta"
	launch(t, p, a)
	launch(t, p, b)
	if err := os.WriteFile(filepath.Join(p.files.instancesDir(), "gamma-1-blue-0.json"), []byte(`{"id": "gamma-1-bl`), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Close()

	p = newTestPlatform(t, testOptions(state))
	ins, err := p.List(testCtx(t), "alpha")
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 1 || ins[0].ID != a.ID {
		t.Fatalf("List(alpha) = %+v, want only %s", ins, a.ID)
	}
	if err := p.Stop(testCtx(t), a.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if ins, err := p.List(testCtx(t), "alpha"); err != nil || len(ins) != 0 {
		t.Fatalf("List(alpha) after Stop = %+v, %v; want none", ins, err)
	}
	all, err := p.List(testCtx(t), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].ID != b.ID {
		t.Fatalf("List() = %+v, want only %s", all, b.ID)
	}
	// The torn record is still named where its ID is used.
	if _, err := p.Launch(testCtx(t), appSpec(t, "gamma-1-blue-0", nil)); err == nil || !strings.Contains(err.Error(), "gamma-1-blue-0.json") {
		t.Fatalf("Launch over a torn record: err = %v, want one naming the file", err)
	}
}

// Logs returns what a quiet instance wrote last, although its tailer reads
// the file seldom while nothing comes: Logs has it read first.
func TestLogsOfAQuietInstanceAreFresh(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	if err := os.WriteFile(path, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tl := newTailer(path, 1, 10, nil)
	stop := make(chan struct{})
	defer func() { close(stop); <-tl.done }()
	// A poll of an hour: no read happens unless asked for.
	go tl.run(stop, time.Hour, func() bool { return false })
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("second\n")
	f.Close()
	tl.fresh(testCtx(t))
	if snap, _ := tl.snapshot(0, false); string(snap) != "first\nsecond\n" {
		t.Fatalf("after fresh: %q, want both lines", snap)
	}
}
