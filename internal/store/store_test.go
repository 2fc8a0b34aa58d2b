package store

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func openTest(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenSetsPragmasAndMigratesOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	checks := map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "busy_timeout": "5000"}
	for pragma, want := range checks {
		var got string
		if err := s.w.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", pragma, err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
	s.Close()

	// Reopening applies nothing twice.
	s = openTest(t, dir)
	v, err := readSchemaVersion(ctx, s.r)
	if err != nil || v != SchemaVersion() || v < 1 {
		t.Fatalf("schema version = %d, %v; want %d", v, err, SchemaVersion())
	}
	var rows int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM schema_version`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("schema_version rows = %d, %v", rows, err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	if _, err := s.w.ExecContext(ctx, `UPDATE schema_version SET version = 999`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(ctx, dir, Options{})
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema: err = %v, want ErrSchemaTooNew", err)
	}
}

func TestAppRoundTripAndConflict(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	var a App
	err := s.Update(ctx, func(tx *Tx) (err error) { a, err = tx.CreateApp(ctx, "shop"); return err })
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx *Tx) error { _, err := tx.CreateApp(ctx, "shop"); return err })
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second CreateApp: %v, want ErrExists", err)
	}
	err = s.Update(ctx, func(tx *Tx) error { _, err := tx.CreateApp(ctx, "Bad_Name"); return err })
	if err == nil {
		t.Fatal("CreateApp accepted an invalid name")
	}
	if _, err := s.CreateRevision(ctx, Revision{App: "shop", Source: "bundle:sha256:aa"}); err != nil {
		t.Fatal(err)
	}
	var a2 App
	err = s.Update(ctx, func(tx *Tx) (err error) { a2, err = tx.SetLiveGeneration(ctx, a, 1); return err })
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetApp(ctx, "shop")
	if err != nil || !reflect.DeepEqual(got, a2) || got.LiveGeneration != 1 || got.Version != 2 {
		t.Fatalf("GetApp = %+v, %v; want %+v", got, err, a2)
	}
	err = s.Update(ctx, func(tx *Tx) error { _, err := tx.SetLiveGeneration(ctx, a, 1); return err })
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("stale SetLiveGeneration: %v, want ErrConflict", err)
	}
	err = s.Update(ctx, func(tx *Tx) (err error) { a2, err = tx.SetLive(ctx, a2, 1, "green", 3); return err })
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetApp(ctx, "shop"); err != nil || got.LiveSlot != "green" || got.LiveInstances != 3 || got.LiveGeneration != 1 {
		t.Fatalf("after SetLive: %+v, %v", got, err)
	}
	if _, err := s.GetApp(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetApp(nope): %v, want ErrNotFound", err)
	}
	apps, err := s.ListApps(ctx)
	if err != nil || len(apps) != 1 {
		t.Fatalf("ListApps = %v, %v", apps, err)
	}
}

func TestRevisionRoundTripAndImmutability(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	in := Revision{
		App: "shop", Source: "bundle:sha256:0123", Spec: []byte("app: shop\n"),
		Params:    map[string]int64{"/shop/DATABASE_URL": 3, "/shop/API_KEY": 1},
		CreatedBy: "alice", Message: "first",
	}
	r1, err := s.CreateRevision(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.CreateRevision(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Generation != 1 || r2.Generation != 2 {
		t.Fatalf("generations = %d, %d; want 1, 2", r1.Generation, r2.Generation)
	}
	got, err := s.GetRevision(ctx, "shop", 1)
	if err != nil || !reflect.DeepEqual(got, r1) {
		t.Fatalf("GetRevision = %+v, %v; want %+v", got, err, r1)
	}
	list, err := s.ListRevisions(ctx, "shop", 0)
	if err != nil || len(list) != 2 || list[0].Generation != 2 {
		t.Fatalf("ListRevisions = %+v, %v", list, err)
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE revisions SET message = 'x'`); err == nil {
		t.Fatal("a revision was updated in place")
	}
	if _, err := s.GetRevision(ctx, "shop", 9); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetRevision(9): %v, want ErrNotFound", err)
	}
}

func TestRevisionImageRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	img := &Image{Ref: "127.0.0.1:5000/shop:latest", ID: "sha256:aa", Digest: "127.0.0.1:5000/shop@sha256:bb"}
	r, err := s.CreateRevision(ctx, Revision{App: "shop", Source: "bundle:sha256:0123", Image: img})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRevision(ctx, "shop", r.Generation)
	if err != nil || got.Image == nil || !reflect.DeepEqual(*got.Image, *img) {
		t.Fatalf("GetRevision = %+v, %v; want image %+v", got.Image, err, img)
	}
	plain, err := s.CreateRevision(ctx, Revision{App: "shop", Source: "bundle:sha256:0123"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetRevision(ctx, "shop", plain.Generation); err != nil || got.Image != nil {
		t.Fatalf("a revision without an image reads back %+v, %v", got.Image, err)
	}
}

func TestDeploymentRoundTripAndConflict(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	for range 2 {
		if _, err := s.CreateRevision(ctx, Revision{App: "shop", Source: "bundle:sha256:aa"}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	d, err := s.CreateDeployment(ctx, Deployment{
		App: "shop", FromGeneration: 1, ToGeneration: 2, Phase: "Pending",
		Deadlines: map[string]time.Time{"progress": deadline},
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.ID == "" || d.Version != 1 || !d.Active() {
		t.Fatalf("created %+v", d)
	}
	got, err := s.GetDeployment(ctx, d.ID)
	if err != nil || !reflect.DeepEqual(got, d) {
		t.Fatalf("GetDeployment = %+v, %v; want %+v", got, err, d)
	}

	if string(d.Details) != "{}" {
		t.Fatalf("empty details read back as %q, want {}", d.Details)
	}
	d.Phase, d.Step = "Shifting", 2
	d.Deadlines["step"] = deadline.Add(time.Minute)
	bad := d
	bad.Details = json.RawMessage(`{"slot":`)
	if _, err := s.UpdateDeployment(ctx, bad); err == nil || !strings.Contains(err.Error(), "details are not valid JSON") {
		t.Fatalf("update with broken details: %v", err)
	}
	d.Details = json.RawMessage(`{"slot":"green","weight":10}`)
	d2, err := s.UpdateDeployment(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	got, err = s.GetDeployment(ctx, d.ID)
	if err != nil || !reflect.DeepEqual(got, d2) || got.Version != 2 || !got.Deadlines["step"].Equal(deadline.Add(time.Minute)) {
		t.Fatalf("after update = %+v, %v; want %+v", got, err, d2)
	}
	if _, err := s.UpdateDeployment(ctx, d); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	d2.Outcome, d2.Reason, d2.Phase = OutcomeSucceeded, "all steps passed", "Succeeded"
	d3, err := s.UpdateDeployment(ctx, d2)
	if err != nil || d3.FinishedAt.IsZero() || d3.Active() {
		t.Fatalf("finishing: %+v, %v", d3, err)
	}
	if _, err := s.GetDeployment(ctx, "d-missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetDeployment(missing): %v", err)
	}
	if _, err := s.UpdateDeployment(ctx, Deployment{ID: "d-missing", Phase: "x"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UpdateDeployment(missing): %v", err)
	}
	// Foreign keys are on: a deployment to a revision that does not exist is refused.
	if _, err := s.CreateDeployment(ctx, Deployment{App: "shop", ToGeneration: 7, Phase: "Pending"}); err == nil {
		t.Fatal("deployment to a missing revision accepted")
	}
	all, err := s.ListDeployments(ctx, "shop", false, 0)
	if err != nil || len(all) != 1 {
		t.Fatalf("ListDeployments = %v, %v", all, err)
	}
	if active, err := s.ListDeployments(ctx, "", true, 0); err != nil || len(active) != 0 {
		t.Fatalf("active deployments after the only one finished = %v, %v", active, err)
	}
	if _, err := s.ActiveDeployment(ctx, "shop"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ActiveDeployment: %v, want ErrNotFound", err)
	}
}

func TestOneActiveDeploymentIsEnforcedByTheDatabase(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	if _, err := s.CreateRevision(ctx, Revision{App: "shop", Source: "bundle:sha256:aa"}); err != nil {
		t.Fatal(err)
	}
	first, err := s.CreateDeployment(ctx, Deployment{App: "shop", ToGeneration: 1, Phase: "Pending"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateDeployment(ctx, Deployment{App: "shop", ToGeneration: 1, Phase: "Pending"})
	var ade *ActiveDeploymentError
	if !errors.Is(err, ErrActiveDeployment) || !errors.As(err, &ade) || ade.DeploymentID != first.ID {
		t.Fatalf("second deployment: %v, want ActiveDeploymentError naming %s", err, first.ID)
	}
	// Bypassing the store's code: the index itself refuses.
	_, err = s.w.ExecContext(ctx, `INSERT INTO deployments (id, app, to_generation, phase, step, deadlines,
		outcome, reason, created_at, updated_at, version) VALUES ('raw', 'shop', 1, 'x', 0, '{}', '', '', 0, 0, 1)`)
	if !isConstraint(err, codeConstraintUnique) {
		t.Fatalf("raw insert of a second active deployment: %v", err)
	}
	// Reopening a finished deployment while another is active is refused too.
	first.Outcome = OutcomeCanceled
	if first, err = s.UpdateDeployment(ctx, first); err != nil {
		t.Fatal(err)
	}
	second, err := s.CreateDeployment(ctx, Deployment{App: "shop", ToGeneration: 1, Phase: "Pending"})
	if err != nil {
		t.Fatal(err)
	}
	if active, err := s.ListDeployments(ctx, "shop", true, 0); err != nil || len(active) != 1 || active[0].ID != second.ID {
		t.Fatalf("ListDeployments(active) = %+v, %v; want only %s", active, err, second.ID)
	}
	first.Outcome = ""
	_, err = s.UpdateDeployment(ctx, first)
	if !errors.As(err, &ade) || ade.DeploymentID != second.ID {
		t.Fatalf("reopening: %v, want ActiveDeploymentError naming %s", err, second.ID)
	}
}

func TestDataDirPathWithSpecialCharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a?b#c d")
	s := openTest(t, dir)
	if _, err := s.CreateRevision(context.Background(), Revision{App: "x", Source: "s"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		t.Fatalf("database not at the expected path: %v", err)
	}
}

func TestPanicInUpdateReleasesTheWriter(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	func() {
		defer func() { _ = recover() }()
		_ = s.Update(ctx, func(tx *Tx) error {
			if _, err := tx.AppendEvent(ctx, Event{Kind: "lost"}); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	if _, err := s.AppendEvent(ctx, Event{Kind: "kept"}); err != nil {
		t.Fatalf("write after a panicking transaction: %v", err)
	}
	evs, err := s.ListEvents(ctx, EventFilter{})
	if err != nil || len(evs) != 1 || evs[0].Kind != "kept" {
		t.Fatalf("events = %+v, %v; want only the one after the panic", evs, err)
	}
}

func TestOpenUpgradesAnOlderSchema(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	if _, err := s.AppendEvent(ctx, Event{Kind: "before-upgrade"}); err != nil {
		t.Fatal(err)
	}
	// Make it look like a database written with migration 0001 only.
	if _, err := s.w.ExecContext(ctx, `DROP TABLE meta;
		DROP TABLE tokens;
		DROP TABLE app_gates;
		ALTER TABLE deployments DROP COLUMN details;
		ALTER TABLE apps DROP COLUMN live_slot;
		ALTER TABLE apps DROP COLUMN live_instances;
		ALTER TABLE revisions DROP COLUMN image;
		UPDATE schema_version SET version = 1`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTest(t, dir)
	if v, err := readSchemaVersion(ctx, s.r); err != nil || v != SchemaVersion() {
		t.Fatalf("schema version after upgrade = %d, %v", v, err)
	}
	if _, err := s.InitMeta(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("table of the new migration missing: %v", err)
	}
	if _, err := s.CountActiveTokens(ctx, ""); err != nil {
		t.Fatalf("tokens table missing after upgrade: %v", err)
	}
	if _, err := s.ListGates(ctx); err != nil {
		t.Fatalf("app_gates table missing after upgrade: %v", err)
	}
	if evs, err := s.ListEvents(ctx, EventFilter{}); err != nil || len(evs) != 1 {
		t.Fatalf("data lost in upgrade: %v, %v", evs, err)
	}
}

func TestMetaPrefix(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx := context.Background()
	for k, v := range map[string]string{"stack/shop/api/green": "a", "stack/shop/web/blue": "b", "stack/shopx/api/blue": "c", "other": "d"} {
		if _, err := s.InitMeta(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.MetaPrefix(ctx, "stack/shop/")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got["stack/shop/api/green"]) != "a" || string(got["stack/shop/web/blue"]) != "b" {
		t.Fatalf("MetaPrefix = %q", got)
	}
}
