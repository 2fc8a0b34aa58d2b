package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// App is a named web service.
type App struct {
	Name string
	// LiveGeneration is the revision serving production; 0 before the
	// first successful deployment.
	LiveGeneration int64
	// LiveSlot is the fleet name ("blue" or "green") the live revision runs
	// as, and LiveInstances how many instances it has; the engine sets them
	// with the live generation.
	LiveSlot      string
	LiveInstances int
	CreatedAt     time.Time
	UpdatedAt     time.Time
	Version       int64
}

// appNameRE is the spec's rule for app names, checked here too because
// names reach the store from the API as well.
var appNameRE = regexp.MustCompile(`^[a-z0-9-]{1,63}$`)

// ValidAppName reports whether name is 1..63 characters of [a-z0-9-].
func ValidAppName(name string) bool { return appNameRE.MatchString(name) }

// CreateApp adds an app; ErrExists if it is already there.
func (tx *Tx) CreateApp(ctx context.Context, name string) (App, error) {
	if !ValidAppName(name) {
		return App{}, fmt.Errorf("app name %q: must be 1-63 characters of a-z, 0-9 and -", name)
	}
	now := tx.s.now().UTC()
	_, err := tx.tx.ExecContext(ctx,
		`INSERT INTO apps (name, created_at, updated_at, version) VALUES (?, ?, ?, 1)`,
		name, nanos(now), nanos(now))
	if isConstraint(err, codeConstraintPrimaryKey) {
		return App{}, fmt.Errorf("app %s: %w", name, ErrExists)
	}
	if err != nil {
		return App{}, fmt.Errorf("creating app %s: %w", name, err)
	}
	return App{Name: name, CreatedAt: fromNanos(nanos(now)), UpdatedAt: fromNanos(nanos(now)), Version: 1}, nil
}

// EnsureApp returns the app, creating it if needed.
func (tx *Tx) EnsureApp(ctx context.Context, name string) (App, error) {
	a, err := getApp(ctx, tx.tx, name)
	if errors.Is(err, ErrNotFound) {
		return tx.CreateApp(ctx, name)
	}
	return a, err
}

// SetLiveGeneration records which revision serves production. a.Version is
// the version the caller read; a stale one fails with ErrConflict.
func (tx *Tx) SetLiveGeneration(ctx context.Context, a App, generation int64) (App, error) {
	return tx.SetLive(ctx, a, generation, a.LiveSlot, a.LiveInstances)
}

// SetLive records which revision serves production, in which slot and with
// how many instances (generation 0: nothing is live). a.Version is the
// version the caller read; a stale one fails with ErrConflict.
func (tx *Tx) SetLive(ctx context.Context, a App, generation int64, slot string, instances int) (App, error) {
	now := tx.s.now().UTC()
	live := sql.NullInt64{Int64: generation, Valid: generation > 0}
	res, err := tx.tx.ExecContext(ctx,
		`UPDATE apps SET live_generation = ?, live_slot = ?, live_instances = ?, updated_at = ?, version = version + 1
		WHERE name = ? AND version = ?`,
		live, slot, instances, nanos(now), a.Name, a.Version)
	if err != nil {
		return App{}, fmt.Errorf("app %s: setting live generation %d: %w", a.Name, generation, err)
	}
	if err := checkUpdated(ctx, tx.tx, res, "apps", "name", a.Name, a.Version); err != nil {
		return App{}, fmt.Errorf("app %s: %w", a.Name, err)
	}
	return getApp(ctx, tx.tx, a.Name)
}

// GetApp reads one app.
func (tx *Tx) GetApp(ctx context.Context, name string) (App, error) { return getApp(ctx, tx.tx, name) }

// GetApp reads one app.
func (s *Store) GetApp(ctx context.Context, name string) (App, error) { return getApp(ctx, s.r, name) }

// ListApps returns every app ordered by name.
func (s *Store) ListApps(ctx context.Context) ([]App, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, live_generation, live_slot, live_instances, created_at, updated_at, version FROM apps ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("listing apps: %w", err)
	}
	defer rows.Close()
	var out []App
	for rows.Next() {
		a, err := scanApp(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing apps: %w", err)
	}
	return out, nil
}

func getApp(ctx context.Context, q querier, name string) (App, error) {
	a, err := scanApp(q.QueryRowContext(ctx,
		`SELECT name, live_generation, live_slot, live_instances, created_at, updated_at, version FROM apps WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return App{}, fmt.Errorf("app %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return App{}, fmt.Errorf("reading app %s: %w", name, err)
	}
	return a, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanApp(r scanner) (App, error) {
	var a App
	var live sql.NullInt64
	var created, updated int64
	if err := r.Scan(&a.Name, &live, &a.LiveSlot, &a.LiveInstances, &created, &updated, &a.Version); err != nil {
		return App{}, err
	}
	a.LiveGeneration = live.Int64
	a.CreatedAt, a.UpdatedAt = fromNanos(created), fromNanos(updated)
	return a, nil
}

// checkUpdated turns "no row changed" into ErrNotFound or ErrConflict,
// naming the version the caller expected and the one in the database.
func checkUpdated(ctx context.Context, q querier, res sql.Result, table, keyCol string, key any, expected int64) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 1 {
		return nil
	}
	var have int64
	err = q.QueryRowContext(ctx, `SELECT version FROM `+table+` WHERE `+keyCol+` = ?`, key).Scan(&have)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: expected version %d, database has %d", ErrConflict, expected, have)
}
