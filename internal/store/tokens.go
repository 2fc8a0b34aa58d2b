package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Token is an API token as stored: its secret is never kept, only the
// SHA-256 of it.
type Token struct {
	ID         string
	Name       string
	Role       string // "viewer", "deployer" or "admin"
	Hash       []byte // SHA-256 of the secret
	CreatedAt  time.Time
	RevokedAt  time.Time // zero while the token is active
	LastUsedAt time.Time // zero until first used; updated coarsely
}

// Active reports whether the token has not been revoked.
func (t Token) Active() bool { return t.RevokedAt.IsZero() }

const tokenColumns = `id, name, role, hash, created_at, revoked_at, last_used_at`

// InsertToken stores a new token; ErrExists if its ID or hash is taken.
func (tx *Tx) InsertToken(ctx context.Context, t Token) (Token, error) {
	t.CreatedAt = fromNanos(nanos(tx.s.now()))
	t.RevokedAt, t.LastUsedAt = time.Time{}, time.Time{}
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO tokens (id, name, role, hash, created_at) VALUES (?, ?, ?, ?, ?)`,
		t.ID, t.Name, t.Role, t.Hash, nanos(t.CreatedAt))
	if isConstraint(err, codeConstraintPrimaryKey) || isConstraint(err, codeConstraintUnique) {
		return Token{}, fmt.Errorf("token %s: %w", t.ID, ErrExists)
	}
	if err != nil {
		return Token{}, fmt.Errorf("creating token %s (%s): %w", t.ID, t.Name, err)
	}
	return t, nil
}

// GetToken reads one token by ID.
func (tx *Tx) GetToken(ctx context.Context, id string) (Token, error) {
	return getToken(ctx, tx.tx, `WHERE id = ?`, id, "token "+id)
}

// GetToken reads one token by ID.
func (s *Store) GetToken(ctx context.Context, id string) (Token, error) {
	return getToken(ctx, s.r, `WHERE id = ?`, id, "token "+id)
}

// TokenByHash finds the token whose secret hashes to hash, revoked or not;
// ErrNotFound when there is none. The error never echoes the hash.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (Token, error) {
	return getToken(ctx, s.r, `WHERE hash = ?`, hash, "token")
}

// ListTokens returns every token, revoked ones included, oldest first.
func (s *Store) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("listing tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	return out, nil
}

// RevokeToken marks a token revoked; ErrNotFound if there is no such
// token, ErrConflict if it is already revoked.
func (tx *Tx) RevokeToken(ctx context.Context, id string) (Token, error) {
	now := tx.s.now()
	res, err := tx.tx.ExecContext(ctx, `UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, nanos(now), id)
	if err != nil {
		return Token{}, fmt.Errorf("revoking token %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return Token{}, fmt.Errorf("revoking token %s: %w", id, err)
	} else if n == 0 {
		t, err := tx.GetToken(ctx, id)
		if err != nil {
			return Token{}, err
		}
		return Token{}, fmt.Errorf("token %s (%s) was already revoked at %s: %w", id, t.Name, t.RevokedAt.Format(time.RFC3339), ErrConflict)
	}
	return tx.GetToken(ctx, id)
}

// CountActiveTokens counts the tokens not revoked, of one role or of any
// when role is empty.
func (tx *Tx) CountActiveTokens(ctx context.Context, role string) (int, error) {
	return countActiveTokens(ctx, tx.tx, role)
}

// CountActiveTokens counts the tokens not revoked, of one role or of any
// when role is empty.
func (s *Store) CountActiveTokens(ctx context.Context, role string) (int, error) {
	return countActiveTokens(ctx, s.r, role)
}

// TouchToken records that a token was used at t.
func (s *Store) TouchToken(ctx context.Context, id string, t time.Time) error {
	return s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.tx.ExecContext(ctx, `UPDATE tokens SET last_used_at = ? WHERE id = ?`, nanos(t), id); err != nil {
			return fmt.Errorf("recording use of token %s: %w", id, err)
		}
		return nil
	})
}

func countActiveTokens(ctx context.Context, q querier, role string) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM tokens WHERE revoked_at IS NULL AND (? = '' OR role = ?)`, role, role).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting active tokens: %w", err)
	}
	return n, nil
}

func getToken(ctx context.Context, q querier, where string, arg any, what string) (Token, error) {
	t, err := scanToken(q.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens `+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	if err != nil {
		return Token{}, fmt.Errorf("reading %s: %w", what, err)
	}
	return t, nil
}

func scanToken(r scanner) (Token, error) {
	var t Token
	var created int64
	var revoked, used sql.NullInt64
	if err := r.Scan(&t.ID, &t.Name, &t.Role, &t.Hash, &created, &revoked, &used); err != nil {
		return Token{}, err
	}
	t.CreatedAt, t.RevokedAt, t.LastUsedAt = fromNanos(created), fromNullNanos(revoked), fromNullNanos(used)
	return t, nil
}
