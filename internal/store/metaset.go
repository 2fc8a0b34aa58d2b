package store

import (
	"context"
	"fmt"
	"strings"
)

// SetMeta writes the named facts of set and removes those of del, in one
// transaction.
func (s *Store) SetMeta(ctx context.Context, set map[string][]byte, del []string) error {
	return s.Update(ctx, func(tx *Tx) error {
		for k, v := range set {
			if _, err := tx.tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, k, v); err != nil {
				return fmt.Errorf("writing meta %s: %w", k, err)
			}
		}
		for _, k := range del {
			if _, err := tx.tx.ExecContext(ctx, `DELETE FROM meta WHERE key = ?`, k); err != nil {
				return fmt.Errorf("removing meta %s: %w", k, err)
			}
		}
		return nil
	})
}

// MetaPrefix returns every named fact whose key starts with prefix.
func (s *Store) MetaPrefix(ctx context.Context, prefix string) (map[string][]byte, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?`, len(prefix), prefix)
	if err != nil {
		return nil, fmt.Errorf("reading meta %s*: %w", prefix, err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var k string
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("reading meta %s*: %w", prefix, err)
		}
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out, rows.Err()
}

// LastEventSeq is the sequence number of the latest event (0 when there is
// none).
func (s *Store) LastEventSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("reading the last event: %w", err)
	}
	return seq, nil
}
