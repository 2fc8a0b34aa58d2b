// Package store keeps bluegreen's durable state in one SQLite file: apps,
// revisions, deployments, the event log and parameter versions.
//
// The database runs in WAL mode with synchronous=FULL, so a transaction whose
// commit has returned survives a killed process and a power loss. Every
// mutable row carries a version; updates name the version they expect and fail
// with ErrConflict when someone else wrote first.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

// FileName is the database file inside the data directory.
const FileName = "bluegreen.db"

// lockName is the advisory lock file that marks a data directory in use.
const lockName = "lock"

// Sentinel errors; wrapped errors name the row involved.
var (
	// ErrNotFound reports a row that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict reports a write based on a stale version of a row.
	ErrConflict = errors.New("version conflict")
	// ErrExists reports a row created twice.
	ErrExists = errors.New("already exists")
	// ErrActiveDeployment reports an app that already has an active
	// deployment; the error is an *ActiveDeploymentError naming it.
	ErrActiveDeployment = errors.New("a deployment is already active")
	// ErrSchemaTooNew reports a database written by a newer binary.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary")
	// ErrInUse reports a data directory opened by a running process.
	ErrInUse = errors.New("data directory is in use")
)

// ActiveDeploymentError names the deployment that blocks a new one.
type ActiveDeploymentError struct {
	App          string
	DeploymentID string
}

// Error names the app and the deployment in progress.
func (e *ActiveDeploymentError) Error() string {
	return fmt.Sprintf("app %s: deployment %s is still in progress", e.App, e.DeploymentID)
}

// Is makes errors.Is(err, ErrActiveDeployment) true.
func (e *ActiveDeploymentError) Is(target error) bool { return target == ErrActiveDeployment }

// Options tune Open. The zero value is ready to use.
type Options struct {
	// Now is the clock used for timestamps; time.Now when nil.
	Now func() time.Time
	// BusyTimeout is how long a connection waits for another process's
	// lock before failing; 5s when zero.
	BusyTimeout time.Duration
}

// Store is an open database. It is safe for concurrent use.
type Store struct {
	dir  string
	path string
	now  func() time.Time

	// Writes go through a single connection so that goroutines of this
	// process queue in Go instead of spinning in SQLite's busy handler;
	// reads use their own pool and see the last committed state.
	w *sql.DB
	r *sql.DB

	lock   *dirLock
	events *notifier

	// Writes asked for while another transaction commits wait in queue
	// and commit together in the next (see Update); committing is held by
	// the caller that runs it.
	committing sync.Mutex
	queueMu    sync.Mutex
	queue      []*write

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the store in dir, applies pending
// migrations and takes a shared lock on the directory so that a restore
// cannot swap the file underneath.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	return open(ctx, dir, opts, true)
}

func open(ctx context.Context, dir string, opts Options, migrate bool) (s *Store, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory %s: %w", dir, err)
	}
	lock, err := lockDir(dir, false)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lock.release()
		}
	}()
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BusyTimeout == 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	path := filepath.Join(dir, FileName)
	// Created here, owner-only, because SQLite would use the umask; its -wal
	// and -shm files take the database file's mode.
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	f.Close()
	w, err := sql.Open("sqlite", dsn(path, opts.BusyTimeout, true))
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn(path, opts.BusyTimeout, false))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	s = &Store{dir: dir, path: path, now: opts.Now, w: w, r: r, lock: lock, events: newNotifier()}
	defer func() {
		if err != nil {
			w.Close()
			r.Close()
		}
	}()
	if err := w.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if migrate {
		err = applyMigrations(ctx, w)
	} else {
		err = checkSchema(ctx, r)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// dsn builds the connection string. synchronous=FULL fsyncs the WAL at
// every commit: the control plane writes little, and a deployment step that
// was reported done must still be done after a power cut.
func dsn(path string, busy time.Duration, write bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	if write {
		// Take the write lock at BEGIN: a deferred transaction that reads
		// and then writes can fail with SQLITE_BUSY without waiting.
		q.Set("_txlock", "immediate")
	} else {
		q.Add("_pragma", "query_only(1)")
	}
	return fileURI(path) + "?" + q.Encode()
}

// fileURI escapes path so that '?' or '#' in a directory name cannot be
// read as URI parameters.
func fileURI(path string) string { return "file:" + (&url.URL{Path: path}).EscapedPath() }

// Dir is the data directory the store lives in.
func (s *Store) Dir() string { return s.dir }

// Close closes the database and releases the directory lock.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = errors.Join(s.r.Close(), s.w.Close())
		s.lock.release()
		// Waiters return (with an error from the closed database) instead
		// of hanging until their context ends.
		s.events.wake()
	})
	return s.closeErr
}

// Tx is a write transaction. Its methods mirror the Store's; all of them
// commit or roll back together.
type Tx struct {
	s        *Store
	tx       batchTx
	appended bool // events were appended: wake waiters after commit
}

// Update runs fn in one write transaction, committing when fn returns nil.
// Do not call other Store methods from fn: writes are serialized and would
// wait for fn forever.
//
// Updates asked for while a transaction commits go together in the next
// one, each in a savepoint of its own: an update whose fn fails (or
// panics) is rolled back alone, the others commit, and all of them with a
// single sync of the log to disk. Each returns once its work is durable.
// With many deployments at once, a commit each would make them wait in
// line for the disk, one sync after another.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	w := &write{ctx: ctx, fn: fn, done: make(chan error, 1)}
	s.queueMu.Lock()
	s.queue = append(s.queue, w)
	s.queueMu.Unlock()

	for {
		s.committing.Lock()
		select {
		case err := <-w.done: // committed by a caller before
			s.committing.Unlock()
			return w.result(err)
		default:
		}
		s.queueMu.Lock()
		batch := s.queue[:min(len(s.queue), maxBatch)]
		s.queue = s.queue[len(batch):]
		s.queueMu.Unlock()
		s.commit(batch)
		s.committing.Unlock()
	}
}

// maxBatch bounds the updates one transaction carries.
const maxBatch = 256

// write is one Update waiting for its transaction.
type write struct {
	ctx  context.Context
	fn   func(*Tx) error
	done chan error // receives the outcome once
	// panicked is what fn panicked with, for Update to panic with again
	// in its caller's goroutine.
	panicked any
}

// result is the outcome Update returns, or panics with.
func (w *write) result(err error) error {
	if w.panicked != nil {
		panic(w.panicked)
	}
	return err
}

// commit runs a batch of updates in one transaction, each in a savepoint,
// and tells each its outcome. The caller holds s.committing.
func (s *Store) commit(batch []*write) {
	if len(batch) == 0 {
		return
	}
	// The transaction serves several callers: no one's context ends it.
	sqlTx, err := s.w.BeginTx(context.WithoutCancel(batch[0].ctx), nil)
	if err != nil {
		for _, w := range batch {
			w.done <- fmt.Errorf("beginning transaction: %w", err)
		}
		return
	}
	committed := false
	defer func() {
		// A transaction left open would hold the only write connection
		// forever.
		if !committed {
			_ = sqlTx.Rollback()
		}
	}()
	outcome := make([]error, len(batch))
	appended, kept := false, 0
	var broken error // the transaction's state is unknown: none of it commits
	ran := len(batch)
	for i, w := range batch {
		if err := w.ctx.Err(); err != nil {
			outcome[i] = err
			continue
		}
		tx := &Tx{s: s, tx: batchTx{sqlTx}}
		outcome[i], broken = s.inSavepoint(sqlTx, w, tx)
		if broken != nil {
			ran = i + 1
			break
		}
		if outcome[i] == nil {
			appended = appended || tx.appended
			kept++
		}
	}
	switch {
	case broken != nil:
		// A savepoint that could not be rolled back or released may
		// have left a failed update's writes in place, or SQLite may have
		// rolled back the whole transaction and run what followed on its
		// own: commit nothing.
		err = sqlTx.Rollback()
		err = fmt.Errorf("the transaction was abandoned: %w", errors.Join(broken, err))
	case kept > 0:
		err = sqlTx.Commit()
		if err != nil {
			err = fmt.Errorf("committing: %w", err)
		}
	default:
		err = sqlTx.Rollback()
		if err != nil {
			err = fmt.Errorf("rolling back: %w", err)
		}
	}
	committed = true
	if ran < len(batch) {
		// Those not yet run go first in the next transaction.
		s.queueMu.Lock()
		s.queue = append(slices.Clone(batch[ran:]), s.queue...)
		s.queueMu.Unlock()
		batch = batch[:ran]
	}
	for i, w := range batch {
		if err != nil && (outcome[i] == nil || broken != nil) {
			outcome[i] = errors.Join(outcome[i], err)
		}
		w.done <- outcome[i]
	}
	if appended && err == nil {
		s.events.wake()
	}
}

// inSavepoint runs w's fn in a savepoint of sqlTx, rolled back when fn
// fails or panics (the panic is kept for w's caller). It returns fn's
// outcome, and broken when the savepoint could not be set, rolled back or
// released: the transaction can then no longer be trusted.
func (s *Store) inSavepoint(sqlTx *sql.Tx, w *write, tx *Tx) (err, broken error) {
	if _, err := sqlTx.Exec("SAVEPOINT upd"); err != nil {
		return err, fmt.Errorf("setting a savepoint: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			w.panicked = p
			err = fmt.Errorf("update panicked: %v", p)
		}
		if err != nil {
			if _, rerr := sqlTx.Exec("ROLLBACK TO upd"); rerr != nil {
				broken = fmt.Errorf("rolling back a failed update: %w", rerr)
			}
		}
		if _, rerr := sqlTx.Exec("RELEASE upd"); rerr != nil && broken == nil {
			broken = fmt.Errorf("releasing a savepoint: %w", rerr)
		}
	}()
	return w.fn(tx), nil
}

// batchTx is the transaction a batch of updates shares. Its statements
// run without their caller's cancellation: SQLite answers a write
// interrupted inside a transaction by rolling back all of it, the other
// callers' work with it. A caller whose context has ended gets its error
// before its next statement instead.
type batchTx struct{ tx *sql.Tx }

// ExecContext runs a statement unless ctx has ended.
func (b batchTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return b.tx.ExecContext(context.WithoutCancel(ctx), query, args...)
}

// QueryContext runs a query unless ctx has ended.
func (b batchTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return b.tx.QueryContext(context.WithoutCancel(ctx), query, args...)
}

// QueryRowContext runs a query unless ctx has ended.
func (b batchTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if ctx.Err() != nil {
		// database/sql answers an ended context before the driver sees it.
		return b.tx.QueryRowContext(ctx, query, args...)
	}
	return b.tx.QueryRowContext(context.WithoutCancel(ctx), query, args...)
}

// querier is what reads need from a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func nanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func nullNanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNullNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromNanos(n.Int64)
}
