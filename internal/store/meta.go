package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Meta reads a named installation fact; ErrNotFound if unset.
func (s *Store) Meta(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("meta %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading meta %s: %w", key, err)
	}
	return v, nil
}

// InitMeta sets key to value unless it is already set, and returns what is
// stored: of two processes initialising at once, both see the winner's value.
func (s *Store) InitMeta(ctx context.Context, key string, value []byte) (stored []byte, err error) {
	err = s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, key, value); err != nil {
			return fmt.Errorf("writing meta %s: %w", key, err)
		}
		return tx.tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&stored)
	})
	return stored, err
}
