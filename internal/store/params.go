package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// ParamVersion is one stored version of a parameter. The store keeps the
// bytes as given; package params validates names and encrypts secure values
// before they get here.
type ParamVersion struct {
	Name    string
	Version int64  // 1, 2, 3… per name
	Type    string // "string", "secure" or "deleted" (a tombstone)
	// Value is plain text for "string", nonce||ciphertext for "secure",
	// empty for "deleted".
	Value     []byte
	CreatedBy string
	CreatedAt time.Time
}

// LatestParamVersion returns the newest version number of name, 0 when it
// was never written.
func (tx *Tx) LatestParamVersion(ctx context.Context, name string) (int64, error) {
	var v sql.NullInt64
	if err := tx.tx.QueryRowContext(ctx, `SELECT MAX(version) FROM params WHERE name = ?`, name).Scan(&v); err != nil {
		return 0, fmt.Errorf("reading latest version of param %s: %w", name, err)
	}
	return v.Int64, nil
}

// InsertParamVersion stores p as given. p.Version must be the next one;
// reusing a version fails with ErrConflict (someone wrote in between).
func (tx *Tx) InsertParamVersion(ctx context.Context, p ParamVersion) (ParamVersion, error) {
	p.CreatedAt = fromNanos(nanos(tx.s.now()))
	value := p.Value
	if value == nil {
		value = []byte{}
	}
	_, err := tx.tx.ExecContext(ctx, `
		INSERT INTO params (name, version, type, value, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		p.Name, p.Version, p.Type, value, p.CreatedBy, nanos(p.CreatedAt))
	if isConstraint(err, codeConstraintPrimaryKey) {
		return ParamVersion{}, fmt.Errorf("param %s version %d: %w", p.Name, p.Version, ErrConflict)
	}
	if err != nil {
		return ParamVersion{}, fmt.Errorf("writing param %s version %d: %w", p.Name, p.Version, err)
	}
	p.Value = value
	return p, nil
}

// GetParamVersion reads one version of name; version 0 means the latest.
func (s *Store) GetParamVersion(ctx context.Context, name string, version int64) (ParamVersion, error) {
	return getParamVersion(ctx, s.r, name, version)
}

// GetParamVersion reads one version of name; version 0 means the latest.
func (tx *Tx) GetParamVersion(ctx context.Context, name string, version int64) (ParamVersion, error) {
	return getParamVersion(ctx, tx.tx, name, version)
}

// ParamHistory returns every version of name, oldest first, without values.
func (s *Store) ParamHistory(ctx context.Context, name string) ([]ParamVersion, error) {
	return queryParams(ctx, s.r, `SELECT name, version, type, X'', created_by, created_at
		FROM params WHERE name = ? ORDER BY version`, name)
}

// LatestParams returns the newest version of every param whose name starts
// with prefix, ordered by name, without values. Deleted params appear as
// their tombstone so callers can tell "deleted" from "never existed".
func (s *Store) LatestParams(ctx context.Context, prefix string) ([]ParamVersion, error) {
	return queryParams(ctx, s.r, `SELECT name, version, type, X'', created_by, created_at
		FROM params p WHERE substr(name, 1, length(?)) = ?
		AND version = (SELECT MAX(version) FROM params WHERE name = p.name)
		ORDER BY name`, prefix, prefix)
}

func getParamVersion(ctx context.Context, q querier, name string, version int64) (ParamVersion, error) {
	query := `SELECT name, version, type, value, created_by, created_at FROM params WHERE name = ? AND version = ?`
	args := []any{name, version}
	if version == 0 {
		query = `SELECT name, version, type, value, created_by, created_at FROM params WHERE name = ? ORDER BY version DESC LIMIT 1`
		args = args[:1]
	}
	ps, err := queryParams(ctx, q, query, args...)
	if err != nil {
		return ParamVersion{}, err
	}
	if len(ps) == 0 {
		if version == 0 {
			return ParamVersion{}, fmt.Errorf("param %s: %w", name, ErrNotFound)
		}
		return ParamVersion{}, fmt.Errorf("param %s version %d: %w", name, version, ErrNotFound)
	}
	return ps[0], nil
}

func queryParams(ctx context.Context, q querier, query string, args ...any) ([]ParamVersion, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("reading params: %w", err)
	}
	defer rows.Close()
	var out []ParamVersion
	for rows.Next() {
		var p ParamVersion
		var created int64
		if err := rows.Scan(&p.Name, &p.Version, &p.Type, &p.Value, &p.CreatedBy, &created); err != nil {
			return nil, fmt.Errorf("reading params: %w", err)
		}
		p.CreatedAt = fromNanos(created)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading params: %w", err)
	}
	return out, nil
}
