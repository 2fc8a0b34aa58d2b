package store

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestBackupWhileWritingAndRestore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := openTest(t, t.TempDir())
	if _, err := src.CreateRevision(ctx, Revision{App: "shop", Source: "bundle:sha256:aa"}); err != nil {
		t.Fatal(err)
	}
	d, err := src.CreateDeployment(ctx, Deployment{App: "shop", ToGeneration: 1, Phase: "Pending"})
	if err != nil {
		t.Fatal(err)
	}
	// The writer bumps the deployment and appends an event in one
	// transaction until the backup is done.
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			err := src.Update(ctx, func(tx *Tx) error {
				next := d
				next.Step++
				var err error
				if next, err = tx.UpdateDeployment(ctx, next); err != nil {
					return err
				}
				d = next
				_, err = tx.AppendEvent(ctx, Event{App: "shop", DeploymentID: d.ID, Kind: "step"})
				return err
			})
			if err != nil && ctx.Err() == nil {
				t.Error(err)
				return
			}
		}
	})
	// Start the backup once writes are flowing.
	for {
		evs, err := src.WaitEvents(ctx, EventFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) >= 20 {
			break
		}
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	if err := src.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	cancel()
	wg.Wait()
	if err := src.Backup(context.Background(), backup); !errors.Is(err, os.ErrExist) {
		t.Fatalf("backup over an existing file: %v, want ErrExist", err)
	}
	if err := VerifyBackup(context.Background(), backup); err != nil {
		t.Fatal(err)
	}

	dst := t.TempDir()
	if prev, err := Restore(context.Background(), backup, dst); err != nil || prev != "" {
		t.Fatalf("Restore into an empty dir = %q, %v", prev, err)
	}
	if info, err := os.Stat(backup); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("backup file mode: %v, %v; want 0600", info, err)
	}
	restored := openTest(t, dst)
	got, err := restored.GetDeployment(context.Background(), d.ID)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := restored.ListEvents(context.Background(), EventFilter{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	// A consistent snapshot: the version counts exactly the step events
	// committed with it, and those form an unbroken prefix of the log.
	if int64(len(evs)) != got.Version-1 || len(evs) < 20 {
		t.Fatalf("backup holds version %d with %d events; inconsistent", got.Version, len(evs))
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event log has a gap at %d (seq %d)", i+1, e.Seq)
		}
	}
}

func TestRestoreRefusesWhileInUse(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	backup := filepath.Join(t.TempDir(), "b.db")
	if err := s.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, backup, dir); !errors.Is(err, ErrInUse) {
		t.Fatalf("restore into an open data dir: %v, want ErrInUse", err)
	}
	s.Close()
	if _, err := Restore(ctx, backup, dir); err != nil {
		t.Fatalf("restore after close: %v", err)
	}
}

func TestRestoreReplacesDatabaseAndKeepsThePreviousOne(t *testing.T) {
	ctx := context.Background()
	a, b := t.TempDir(), t.TempDir()
	sa, sb := openTest(t, a), openTest(t, b)
	if _, err := sb.AppendEvent(ctx, Event{App: "b", Kind: "from-b"}); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "b.db")
	if err := sb.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	// Commits of a live in its WAL when it closes uncheckpointed would be
	// replayed into the restored file if the WAL were left behind.
	for range 5 {
		if _, err := sa.AppendEvent(ctx, Event{App: "a", Kind: "from-a"}); err != nil {
			t.Fatal(err)
		}
	}
	sa.Close()
	prev, err := Restore(ctx, backup, a)
	if err != nil || prev != filepath.Join(a, PreRestoreName) {
		t.Fatalf("Restore = %q, %v", prev, err)
	}
	s := openTest(t, a)
	evs, err := s.ListEvents(ctx, EventFilter{})
	if err != nil || len(evs) != 1 || evs[0].Kind != "from-b" {
		t.Fatalf("after restore: events %+v, %v; want only b's", evs, err)
	}
	if err := VerifyBackup(ctx, filepath.Join(a, PreRestoreName)); err != nil {
		t.Fatalf("previous database not kept intact: %v", err)
	}
}

func TestRestoreRefusesBadBackups(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	for i := range 200 {
		if _, err := s.AppendEvent(ctx, Event{App: "shop", Kind: "filler", Message: string(rune('a' + i%26))}); err != nil {
			t.Fatal(err)
		}
	}
	good := filepath.Join(t.TempDir(), "good.db")
	if err := s.Backup(ctx, good); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Scribble over the b-tree page header of the events table: structure
	// damage, which integrity_check must catch. (Flipped bits inside a
	// row's text are not detectable: SQLite keeps no page checksums.)
	var pageSize, root int64
	gdb, err := sql.Open("sqlite", fileURI(good)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	err = gdb.QueryRowContext(ctx, `SELECT (SELECT page_size FROM pragma_page_size), rootpage FROM sqlite_schema WHERE name = 'events'`).Scan(&pageSize, &root)
	gdb.Close()
	if err != nil || root < 2 {
		t.Fatalf("locating the events table in the backup: root %d, %v", root, err)
	}
	corrupt := append([]byte(nil), data...)
	off := (root - 1) * pageSize
	for i := off; i < off+12; i++ {
		corrupt[i] = 0xff
	}
	cases := map[string]string{
		"corrupted":  write("corrupt.db", corrupt),
		"truncated":  write("truncated.db", data[:len(data)/2]),
		"not sqlite": write("text.db", []byte("hello, this is not a database file at all")),
		"missing":    filepath.Join(t.TempDir(), "missing.db"),
	}
	// A backup from a newer binary.
	newer := filepath.Join(t.TempDir(), "newer")
	ns := openTest(t, newer)
	if _, err := ns.w.ExecContext(ctx, `UPDATE schema_version SET version = 999`); err != nil {
		t.Fatal(err)
	}
	cases["newer schema"] = filepath.Join(t.TempDir(), "newer.db")
	if err := ns.Backup(ctx, cases["newer schema"]); err != nil {
		t.Fatal(err)
	}

	for name, path := range cases {
		t.Run(name, func(t *testing.T) {
			dst := t.TempDir()
			ds := openTest(t, dst)
			if _, err := ds.AppendEvent(ctx, Event{App: "keep", Kind: "original"}); err != nil {
				t.Fatal(err)
			}
			ds.Close()
			_, err := Restore(ctx, path, dst)
			if err == nil {
				t.Fatal("restore accepted a bad backup")
			}
			t.Logf("refused: %v", err)
			// The data dir still holds its own database, and no leftovers.
			ds = openTest(t, dst)
			evs, err := ds.ListEvents(ctx, EventFilter{})
			if err != nil || len(evs) != 1 || evs[0].Kind != "original" {
				t.Fatalf("data dir changed by a refused restore: %+v, %v", evs, err)
			}
			entries, _ := os.ReadDir(dst)
			for _, e := range entries {
				if filepath.Ext(e.Name()) != ".db" && e.Name() != lockName && e.Name() != FileName+"-wal" && e.Name() != FileName+"-shm" {
					t.Errorf("leftover file %s", e.Name())
				}
			}
		})
	}
	if err := VerifyBackup(ctx, good); err != nil {
		t.Fatalf("good backup refused: %v", err)
	}
}

func TestRestoreKeepsALiveDatabaseAtEveryStep(t *testing.T) {
	// The step Restore takes before the final rename: the old database must
	// still be in place, so a crash there loses nothing.
	ctx := context.Background()
	dir := t.TempDir()
	st, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateRevision(ctx, Revision{App: "shop", Source: "bundle:x", Spec: []byte("app: shop\n")}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	dbPath := filepath.Join(dir, FileName)
	if _, err := moveAside(ctx, dbPath, filepath.Join(dir, PreRestoreName)); err != nil {
		t.Fatal(err)
	}
	st, err = Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.GetRevision(ctx, "shop", 1); err != nil {
		t.Fatalf("after the database was set aside, the live one lost its revision: %v", err)
	}
	info, err := os.Stat(dbPath)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("database file mode %v %v, want 0600", info.Mode().Perm(), err)
	}
}
