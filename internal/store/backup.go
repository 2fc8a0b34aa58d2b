package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrBadBackup reports a backup file that fails its checks.
var ErrBadBackup = errors.New("backup is not usable")

// Backup writes a consistent copy of the database to dest while writers
// keep running. VACUUM INTO reads one snapshot, so the copy holds every
// transaction committed before it started and none after; it is written
// under a temporary name and renamed, so dest never holds half a backup.
func (s *Store) Backup(ctx context.Context, dest string) error {
	if _, err := os.Stat(dest); err == nil {
		return fmt.Errorf("backup to %s: %w (refusing to overwrite)", dest, fs.ErrExist)
	}
	tmp := tempName(dest)
	// A connection of its own: the read pool is query_only, which forbids
	// VACUUM, and the write connection would hold up writers meanwhile.
	db, err := sql.Open("sqlite", fileURI(s.path)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return fmt.Errorf("backup: opening %s: %w", s.path, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup to %s: %w", dest, err)
	}
	// The copy holds everything the database does; keep it as private as
	// the data directory.
	if err := os.Chmod(tmp, 0o600); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup to %s: %w", dest, err)
	}
	if err := syncFile(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup to %s: %w", dest, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup to %s: %w", dest, err)
	}
	return syncDir(filepath.Dir(dest))
}

// BackupDir backs up the store in dataDir without migrating it, so a
// running server of an older version keeps the schema it knows.
func BackupDir(ctx context.Context, dataDir, dest string) error {
	if _, err := os.Stat(filepath.Join(dataDir, FileName)); err != nil {
		return fmt.Errorf("no bluegreen database in %s: %w", dataDir, err)
	}
	s, err := open(ctx, dataDir, Options{}, false)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Backup(ctx, dest)
}

// VerifyBackup checks that path is an intact bluegreen database whose
// schema this binary can use.
func VerifyBackup(ctx context.Context, path string) error {
	return verifyFile(ctx, path, path)
}

// verifyFile checks path and names it as label in errors, so a restore
// reports the file the user gave rather than its working copy.
func verifyFile(ctx context.Context, path, label string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	header := make([]byte, 16)
	_, err = io.ReadFull(f, header)
	f.Close()
	if err != nil || string(header) != "SQLite format 3\x00" {
		return fmt.Errorf("%w: %s is not an SQLite database", ErrBadBackup, label)
	}
	db, err := sql.Open("sqlite", fileURI(path)+"?_pragma=query_only(1)")
	if err != nil {
		return fmt.Errorf("%w: opening %s: %v", ErrBadBackup, label, err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return fmt.Errorf("%w: %s: integrity check: %v", ErrBadBackup, label, err)
	}
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return fmt.Errorf("%w: %s: integrity check: %v", ErrBadBackup, label, err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return fmt.Errorf("%w: %s: integrity check: %v", ErrBadBackup, label, err)
	}
	if len(problems) > 0 {
		if len(problems) > 3 {
			problems = append(problems[:3], "…")
		}
		return fmt.Errorf("%w: %s fails the integrity check: %s", ErrBadBackup, label, strings.Join(problems, "; "))
	}
	if err := checkSchema(ctx, db); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadBackup, label, err)
	}
	return nil
}

// PreRestoreName is where Restore keeps the database it replaced.
const PreRestoreName = FileName + ".pre-restore"

// Restore replaces the database in dataDir with the backup at src. It
// refuses while any process has the store open (ErrInUse) and when the
// backup fails VerifyBackup. The database it replaced, if any, is kept as
// PreRestoreName and its path returned. A crash at any point leaves either
// the old or the new database in place, never a mix.
func Restore(ctx context.Context, src, dataDir string) (previous string, err error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("restore: creating %s: %w", dataDir, err)
	}
	lock, err := lockDir(dataDir, true)
	if err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	defer lock.release()

	dbPath := filepath.Join(dataDir, FileName)
	tmp := tempName(dbPath)
	defer removeDB(tmp)
	if err := copyFile(src, tmp); err != nil {
		return "", fmt.Errorf("restore: copying %s: %w", src, err)
	}
	// Verify the copy, not the source, so what is checked is what lands.
	if err := verifyFile(ctx, tmp, src); err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	previous = filepath.Join(dataDir, PreRestoreName)
	moved, err := moveAside(ctx, dbPath, previous)
	if err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	if !moved {
		previous = ""
	}
	if err := os.Rename(tmp, dbPath); err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	return previous, syncDir(dataDir)
}

// moveAside keeps a copy of the live database under aside, reporting whether
// there was one. It first folds the WAL into the main file: a stale -wal
// next to a replaced database would be replayed into it on the next open.
func moveAside(ctx context.Context, dbPath, aside string) (bool, error) {
	if _, err := os.Stat(dbPath); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if db, err := sql.Open("sqlite", fileURI(dbPath)); err == nil {
		// A damaged database may refuse; its WAL then moves along with it.
		_, _ = db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
		db.Close()
	}
	removeDB(aside)
	// The old database is linked aside, not moved: it stays under its own name
	// until the restored copy replaces it in one rename, so a crash in between
	// finds the old database, never none (which the next open would silently
	// replace with an empty one).
	if err := os.Link(dbPath, aside); err != nil {
		return false, fmt.Errorf("keeping %s aside: %w", dbPath, err)
	}
	if err := os.Rename(dbPath+"-wal", aside+"-wal"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("moving %s-wal aside: %w", dbPath, err)
	}
	if err := os.Remove(dbPath + "-shm"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("removing %s-shm: %w", dbPath, err)
	}
	return true, nil
}

// removeDB deletes a database file with its WAL and shared-memory files.
func removeDB(path string) {
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		os.Remove(path + suffix)
	}
}

func tempName(path string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return path + ".tmp-" + hex.EncodeToString(b[:])
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
