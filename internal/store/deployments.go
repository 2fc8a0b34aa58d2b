package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Outcomes end a deployment. While Outcome is empty the deployment is
// active, and the database allows only one active deployment per app.
const (
	OutcomeSucceeded  = "succeeded"
	OutcomeRolledBack = "rolled_back"
	OutcomeFailed     = "failed"
	OutcomeCanceled   = "canceled"
)

// Deployment is one durable run of the state machine moving an app from
// one revision to another. The engine owns the meaning of Phase and Step;
// the store keeps them, with every deadline as an absolute time, so that a
// restarted server resumes where it stopped.
type Deployment struct {
	ID             string
	App            string
	FromGeneration int64 // 0 for an app's first deployment
	ToGeneration   int64
	Phase          string
	Step           int
	// Deadlines are named absolute times (e.g. "approval", "keep_blue").
	Deadlines map[string]time.Time
	// Details is the engine's own state of the deployment, as JSON the
	// store keeps without reading it ("{}" when empty).
	Details   json.RawMessage
	Outcome   string // empty while active
	Reason    string
	CreatedAt time.Time
	UpdatedAt time.Time
	// FinishedAt is set when Outcome first becomes non-empty.
	FinishedAt time.Time
	Version    int64
}

// Active reports whether the deployment has not finished.
func (d Deployment) Active() bool { return d.Outcome == "" }

// NewDeploymentID returns a random identifier like "d-5f2c9a1b7e3d".
func NewDeploymentID() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("reading random bytes: %v", err))
	}
	return "d-" + hex.EncodeToString(b[:])
}

// CreateDeployment inserts d (ID generated when empty) at version 1. If the
// app already has an active deployment, the error is an
// *ActiveDeploymentError (errors.Is ErrActiveDeployment).
func (tx *Tx) CreateDeployment(ctx context.Context, d Deployment) (Deployment, error) {
	if d.ID == "" {
		d.ID = NewDeploymentID()
	}
	if d.Phase == "" {
		return Deployment{}, fmt.Errorf("deployment %s: phase is empty", d.ID)
	}
	now := fromNanos(nanos(tx.s.now()))
	d.CreatedAt, d.UpdatedAt, d.Version = now, now, 1
	d.FinishedAt = time.Time{}
	if !d.Active() {
		d.FinishedAt = now
	}
	deadlines, err := encodeDeadlines(d.Deadlines)
	if err != nil {
		return Deployment{}, fmt.Errorf("deployment %s: %w", d.ID, err)
	}
	if d.Details, err = normalizeDetails(d.Details); err != nil {
		return Deployment{}, fmt.Errorf("deployment %s: %w", d.ID, err)
	}
	from := sql.NullInt64{Int64: d.FromGeneration, Valid: d.FromGeneration > 0}
	_, err = tx.tx.ExecContext(ctx, `
		INSERT INTO deployments (id, app, from_generation, to_generation, phase, step, deadlines, details,
			outcome, reason, created_at, updated_at, finished_at, version)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`,
		d.ID, d.App, from, d.ToGeneration, d.Phase, d.Step, deadlines, string(d.Details),
		d.Outcome, d.Reason, nanos(now), nanos(now), nullNanos(d.FinishedAt))
	if err != nil {
		return Deployment{}, tx.deploymentWriteError(ctx, d, "creating", err)
	}
	d.Deadlines = normalizeDeadlines(d.Deadlines)
	return d, nil
}

// UpdateDeployment writes d's phase, step, deadlines, outcome and reason.
// d.Version is the version the caller read: a stale one fails with
// ErrConflict. It returns the deployment at its new version.
func (tx *Tx) UpdateDeployment(ctx context.Context, d Deployment) (Deployment, error) {
	prev, err := getDeployment(ctx, tx.tx, d.ID)
	if err != nil {
		return Deployment{}, err
	}
	if prev.Version != d.Version {
		return Deployment{}, fmt.Errorf("deployment %s: %w: expected version %d, database has %d", d.ID, ErrConflict, d.Version, prev.Version)
	}
	now := fromNanos(nanos(tx.s.now()))
	finished := prev.FinishedAt
	switch {
	case d.Active():
		finished = time.Time{}
	case finished.IsZero():
		finished = now
	}
	deadlines, err := encodeDeadlines(d.Deadlines)
	if err != nil {
		return Deployment{}, fmt.Errorf("deployment %s: %w", d.ID, err)
	}
	if d.Details, err = normalizeDetails(d.Details); err != nil {
		return Deployment{}, fmt.Errorf("deployment %s: %w", d.ID, err)
	}
	res, err := tx.tx.ExecContext(ctx, `
		UPDATE deployments SET phase = ?, step = ?, deadlines = ?, details = ?, outcome = ?, reason = ?,
			updated_at = ?, finished_at = ?, version = version + 1
		WHERE id = ? AND version = ?`,
		d.Phase, d.Step, deadlines, string(d.Details), d.Outcome, d.Reason, nanos(now), nullNanos(finished), d.ID, d.Version)
	if err != nil {
		return Deployment{}, tx.deploymentWriteError(ctx, d, "updating", err)
	}
	if err := checkUpdated(ctx, tx.tx, res, "deployments", "id", d.ID, d.Version); err != nil {
		return Deployment{}, fmt.Errorf("deployment %s: %w", d.ID, err)
	}
	// Identity fields are not updatable; return what the database holds.
	prev.Phase, prev.Step, prev.Outcome, prev.Reason = d.Phase, d.Step, d.Outcome, d.Reason
	prev.Deadlines = normalizeDeadlines(d.Deadlines)
	prev.Details = d.Details
	prev.UpdatedAt, prev.FinishedAt, prev.Version = now, finished, d.Version+1
	return prev, nil
}

// deploymentWriteError names the blocking deployment when the one-active
// index refused the write.
func (tx *Tx) deploymentWriteError(ctx context.Context, d Deployment, what string, err error) error {
	if isConstraint(err, codeConstraintUnique) {
		var other string
		if qerr := tx.tx.QueryRowContext(ctx,
			`SELECT id FROM deployments WHERE app = ? AND outcome = ''`, d.App).Scan(&other); qerr == nil {
			return &ActiveDeploymentError{App: d.App, DeploymentID: other}
		}
	}
	if isConstraint(err, codeConstraintPrimaryKey) {
		return fmt.Errorf("deployment %s: %w", d.ID, ErrExists)
	}
	return fmt.Errorf("%s deployment %s of app %s: %w", what, d.ID, d.App, err)
}

// CreateDeployment inserts a deployment in its own transaction.
func (s *Store) CreateDeployment(ctx context.Context, d Deployment) (out Deployment, err error) {
	err = s.Update(ctx, func(tx *Tx) error {
		out, err = tx.CreateDeployment(ctx, d)
		return err
	})
	return out, err
}

// UpdateDeployment updates a deployment in its own transaction.
func (s *Store) UpdateDeployment(ctx context.Context, d Deployment) (out Deployment, err error) {
	err = s.Update(ctx, func(tx *Tx) error {
		out, err = tx.UpdateDeployment(ctx, d)
		return err
	})
	return out, err
}

// GetDeployment reads one deployment.
func (s *Store) GetDeployment(ctx context.Context, id string) (Deployment, error) {
	return getDeployment(ctx, s.r, id)
}

// GetDeployment reads one deployment.
func (tx *Tx) GetDeployment(ctx context.Context, id string) (Deployment, error) {
	return getDeployment(ctx, tx.tx, id)
}

// ActiveDeployment returns the app's active deployment, or ErrNotFound.
func (s *Store) ActiveDeployment(ctx context.Context, app string) (Deployment, error) {
	d, err := scanDeployment(s.r.QueryRowContext(ctx,
		`SELECT `+deploymentCols+` FROM deployments WHERE app = ? AND outcome = ''`, app))
	if errors.Is(err, sql.ErrNoRows) {
		return Deployment{}, fmt.Errorf("active deployment of app %s: %w", app, ErrNotFound)
	}
	if err != nil {
		return Deployment{}, fmt.Errorf("reading active deployment of app %s: %w", app, err)
	}
	return d, nil
}

// ListDeployments returns deployments, newest first: of one app when app
// is not empty, only active ones when activeOnly, at most limit (all when
// limit <= 0). A restarted engine lists the active ones to resume them.
func (s *Store) ListDeployments(ctx context.Context, app string, activeOnly bool, limit int) ([]Deployment, error) {
	query, args := deploymentsQuery(app, activeOnly, limit)
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("listing deployments: %w", err)
	}
	defer rows.Close()
	var out []Deployment
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			return nil, fmt.Errorf("listing deployments: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing deployments: %w", err)
	}
	return out, nil
}

// LatestDeployments returns every app's latest deployment, by app, in one
// read: the active one where there is one (an app starts no deployment
// while one is active), else the last that ended. Apps never deployed are
// missing.
func (s *Store) LatestDeployments(ctx context.Context) (map[string]Deployment, error) {
	rows, err := s.r.QueryContext(ctx, latestQuery)
	if err != nil {
		return nil, fmt.Errorf("listing the latest deployments: %w", err)
	}
	defer rows.Close()
	out := map[string]Deployment{}
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			return nil, fmt.Errorf("listing the latest deployments: %w", err)
		}
		out[d.App] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing the latest deployments: %w", err)
	}
	return out, nil
}

// latestQuery looks up each app's latest deployment by the index on
// (app, created_at): one seek per app.
const latestQuery = `SELECT ` + deploymentColsOf + ` FROM apps a JOIN deployments d ON d.id = (
	SELECT id FROM deployments WHERE app = a.name ORDER BY created_at DESC, id DESC LIMIT 1)`

// deploymentsQuery is ListDeployments' statement: one per case, each with
// a plain WHERE, because a condition that also holds when no app is given
// leaves SQLite no index to use, and every call would read every
// deployment of every app.
func deploymentsQuery(app string, activeOnly bool, limit int) (string, []any) {
	if limit <= 0 {
		limit = -1
	}
	var where string
	var args []any
	switch {
	case app != "" && activeOnly:
		where, args = `app = ? AND outcome = ''`, []any{app}
	case app != "":
		where, args = `app = ?`, []any{app}
	case activeOnly:
		where = `outcome = ''`
	default:
		where = `1`
	}
	return `SELECT ` + deploymentCols + ` FROM deployments WHERE ` + where +
		` ORDER BY created_at DESC, id DESC LIMIT ?`, append(args, limit)
}

const deploymentCols = `id, app, from_generation, to_generation, phase, step, deadlines, details, outcome, reason,
	created_at, updated_at, finished_at, version`

// deploymentColsOf are deploymentCols of the table named d.
const deploymentColsOf = `d.id, d.app, d.from_generation, d.to_generation, d.phase, d.step, d.deadlines, d.details,
	d.outcome, d.reason, d.created_at, d.updated_at, d.finished_at, d.version`

func getDeployment(ctx context.Context, q querier, id string) (Deployment, error) {
	d, err := scanDeployment(q.QueryRowContext(ctx, `SELECT `+deploymentCols+` FROM deployments WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Deployment{}, fmt.Errorf("deployment %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Deployment{}, fmt.Errorf("reading deployment %s: %w", id, err)
	}
	return d, nil
}

func scanDeployment(r scanner) (Deployment, error) {
	var d Deployment
	var from, finished sql.NullInt64
	var deadlines, details string
	var created, updated int64
	if err := r.Scan(&d.ID, &d.App, &from, &d.ToGeneration, &d.Phase, &d.Step, &deadlines, &details,
		&d.Outcome, &d.Reason, &created, &updated, &finished, &d.Version); err != nil {
		return Deployment{}, err
	}
	d.FromGeneration = from.Int64
	d.Details = json.RawMessage(details)
	d.CreatedAt, d.UpdatedAt, d.FinishedAt = fromNanos(created), fromNanos(updated), fromNullNanos(finished)
	var raw map[string]int64
	if err := json.Unmarshal([]byte(deadlines), &raw); err != nil {
		return Deployment{}, fmt.Errorf("deployment %s: decoding deadlines: %w", d.ID, err)
	}
	d.Deadlines = make(map[string]time.Time, len(raw))
	for k, v := range raw {
		d.Deadlines[k] = fromNanos(v)
	}
	return d, nil
}

// Deadlines are stored as Unix nanoseconds so they compare and round-trip
// exactly, independent of time zones.
func encodeDeadlines(m map[string]time.Time) (string, error) {
	raw := make(map[string]int64, len(m))
	for k, v := range m {
		if v.IsZero() {
			continue
		}
		raw[k] = nanos(v)
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return "", fmt.Errorf("encoding deadlines: %w", err)
	}
	return string(b), nil
}

func normalizeDeadlines(m map[string]time.Time) map[string]time.Time {
	out := make(map[string]time.Time, len(m))
	for k, v := range m {
		if !v.IsZero() {
			out[k] = fromNanos(nanos(v))
		}
	}
	return out
}

// normalizeDetails stores nothing as "{}" and refuses what is not JSON, so
// a reader can always decode what it finds.
func normalizeDetails(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 {
		return json.RawMessage("{}"), nil
	}
	if !json.Valid(raw) {
		return nil, errors.New("details are not valid JSON")
	}
	return raw, nil
}
