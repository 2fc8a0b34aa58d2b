package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Modes of an app's gate.
const (
	GatePaused      = "paused"
	GateMaintenance = "maintenance"
)

// Gate is an app an operator paused or put in maintenance. An app without
// one serves as usual.
type Gate struct {
	App  string
	Mode string // GatePaused or GateMaintenance
	// MaxWait and MaxHeld bound a pause: how long one request is held, how
	// many are held at once.
	MaxWait time.Duration
	MaxHeld int
	// Message and RetryAfter are a maintenance page's text ("" for the
	// router's default) and Retry-After header.
	Message    string
	RetryAfter time.Duration
	// By says who set it ("ci from 127.0.0.1"), "" when nobody did by a request.
	By    string
	Since time.Time
}

// SetGate records g as the app's gate, in place of the one it had.
func (tx *Tx) SetGate(ctx context.Context, g Gate) (Gate, error) {
	if g.Mode != GatePaused && g.Mode != GateMaintenance {
		return Gate{}, fmt.Errorf("app %s: gate mode %q: want %s or %s", g.App, g.Mode, GatePaused, GateMaintenance)
	}
	if g.Since.IsZero() {
		g.Since = tx.s.now()
	}
	g.Since = fromNanos(nanos(g.Since))
	_, err := tx.tx.ExecContext(ctx, `
		INSERT INTO app_gates (app, mode, max_wait_ns, max_held, message, retry_after_ns, set_by, since)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (app) DO UPDATE SET mode = excluded.mode, max_wait_ns = excluded.max_wait_ns,
			max_held = excluded.max_held, message = excluded.message, retry_after_ns = excluded.retry_after_ns,
			set_by = excluded.set_by, since = excluded.since`,
		g.App, g.Mode, int64(g.MaxWait), g.MaxHeld, g.Message, int64(g.RetryAfter), g.By, nanos(g.Since))
	if err != nil {
		return Gate{}, fmt.Errorf("app %s: recording %s: %w", g.App, g.Mode, err)
	}
	return g, nil
}

// ClearGate removes the app's gate; it reports whether there was one.
func (tx *Tx) ClearGate(ctx context.Context, app string) (bool, error) {
	res, err := tx.tx.ExecContext(ctx, `DELETE FROM app_gates WHERE app = ?`, app)
	if err != nil {
		return false, fmt.Errorf("app %s: clearing its gate: %w", app, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// GetGate reads the app's gate; ok is false when it has none.
func (tx *Tx) GetGate(ctx context.Context, app string) (g Gate, ok bool, err error) {
	return getGate(ctx, tx.tx, app)
}

// GetGate reads the app's gate; ok is false when it has none.
func (s *Store) GetGate(ctx context.Context, app string) (g Gate, ok bool, err error) {
	return getGate(ctx, s.r, app)
}

// ListGates returns every app's gate, by app name.
func (s *Store) ListGates(ctx context.Context) (map[string]Gate, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+gateColumns+` FROM app_gates`)
	if err != nil {
		return nil, fmt.Errorf("listing gates: %w", err)
	}
	defer rows.Close()
	out := map[string]Gate{}
	for rows.Next() {
		g, err := scanGate(rows)
		if err != nil {
			return nil, fmt.Errorf("listing gates: %w", err)
		}
		out[g.App] = g
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing gates: %w", err)
	}
	return out, nil
}

const gateColumns = `app, mode, max_wait_ns, max_held, message, retry_after_ns, set_by, since`

func getGate(ctx context.Context, q querier, app string) (Gate, bool, error) {
	g, err := scanGate(q.QueryRowContext(ctx, `SELECT `+gateColumns+` FROM app_gates WHERE app = ?`, app))
	if errors.Is(err, sql.ErrNoRows) {
		return Gate{}, false, nil
	}
	if err != nil {
		return Gate{}, false, fmt.Errorf("reading the gate of app %s: %w", app, err)
	}
	return g, true, nil
}

func scanGate(r scanner) (Gate, error) {
	var g Gate
	var wait, retry, since int64
	if err := r.Scan(&g.App, &g.Mode, &wait, &g.MaxHeld, &g.Message, &retry, &g.By, &since); err != nil {
		return Gate{}, err
	}
	g.MaxWait, g.RetryAfter, g.Since = time.Duration(wait), time.Duration(retry), fromNanos(since)
	return g, nil
}
