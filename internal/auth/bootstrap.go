package auth

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"bluegreen/internal/store"
)

// AdminTokenFile is the file in the data directory where the first admin
// token is written.
const AdminTokenFile = "admin.token"

// EnsureAdmin makes an admin token named "admin" when the store has no
// active token at all, and writes its secret to path (mode 0600, replaced
// atomically). It reports whether it made one. The file is written before
// the token is committed: a token nobody can read is never left behind.
func EnsureAdmin(ctx context.Context, st *store.Store, path string) (bool, error) {
	created := false
	err := st.Update(ctx, func(tx *store.Tx) error {
		n, err := tx.CountActiveTokens(ctx, "")
		if err != nil || n > 0 {
			return err
		}
		_, secret, err := create(ctx, tx, "admin", Admin)
		if err != nil {
			return err
		}
		if err := writeSecretFile(path, secret+"\n"); err != nil {
			return fmt.Errorf("writing the admin token to %s: %w", path, err)
		}
		created = true
		return nil
	})
	return created, err
}

// writeSecretFile replaces path with data, readable by its owner only,
// without a moment where path holds part of it.
func writeSecretFile(path, data string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
