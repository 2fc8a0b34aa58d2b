package cli

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"bluegreen/internal/store"
)

func execute(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := NewRootCmd(&out, &out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestBackupAndRestoreCommands(t *testing.T) {
	ctx := context.Background()
	src, dst := t.TempDir(), t.TempDir()
	s, err := store.Open(ctx, src, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendEvent(ctx, store.Event{App: "shop", Kind: "marker"}); err != nil {
		t.Fatal(err)
	}
	// The backup runs while the store is open, as it would beside a server.
	file := filepath.Join(t.TempDir(), "b.db")
	out, err := execute(t, "backup", file, "--data", src)
	if err != nil || !strings.Contains(out, "written to "+file) {
		t.Fatalf("backup: %q, %v", out, err)
	}
	s.Close()

	t.Setenv(DataEnv, dst) // restore finds its data dir in the environment
	out, err = execute(t, "restore", file)
	if err != nil || !strings.Contains(out, "restored "+file+" into "+dst) || strings.Contains(out, "kept as") {
		t.Fatalf("restore into an empty dir: %q, %v", out, err)
	}
	r, err := store.Open(ctx, dst, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	evs, err := r.ListEvents(ctx, store.EventFilter{})
	if err != nil || len(evs) != 1 || evs[0].Kind != "marker" {
		t.Fatalf("restored events = %+v, %v", evs, err)
	}
	// Restoring into a directory in use is refused with a hint.
	_, err = execute(t, "restore", file)
	if !errors.Is(err, store.ErrInUse) || !strings.Contains(err.Error(), "stop the bluegreen server") {
		t.Fatalf("restore while open: %v", err)
	}
}

func TestBackupCommandMisuse(t *testing.T) {
	for _, args := range [][]string{{"backup"}, {"restore"}, {"backup", "a", "b"}, {"restore", "--nope", "x"}} {
		_, err := execute(t, args...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
	_, err := execute(t, "backup", filepath.Join(t.TempDir(), "b.db"), "--data", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "no bluegreen database") {
		t.Fatalf("backup of an empty data dir: %v", err)
	}
}
