package artifact

import (
	"cmp"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options configure a Store.
type Options struct {
	// Limits bound every bundle ingested or unpacked; zero fields take
	// DefaultLimits.
	Limits Limits
	// Now is the clock that stamps ingests, which Prune orders by.
	// time.Now when nil.
	Now func() time.Time
}

// Store keeps bundles content-addressed under one directory:
//
//	<dir>/sha256/<hex>.tar.gz   canonical bundles, named by digest
//	<dir>/tmp/                  staging and partial writes
//
// A bundle's modification time records its latest ingest. One Store (one
// process) owns a directory at a time: New clears tmp of what a crash left.
type Store struct {
	dir string
	lim Limits
	now func() time.Time

	// mu orders publishing, re-stamping and removing bundles, so Prune never
	// removes a bundle that an ingest has just counted as recent.
	mu sync.Mutex

	// noSync skips fsync; only in-package fuzzing sets it, where durability
	// is not under test and fsync on a busy disk can stall for seconds.
	noSync bool
}

// Bundle describes a stored bundle.
type Bundle struct {
	Digest   Digest
	Size     int64     // bytes of the stored canonical archive
	Ingested time.Time // latest ingest
}

// New opens (creating if needed) a store in dir.
func New(dir string, opts Options) (*Store, error) {
	s := &Store{dir: dir, lim: opts.Limits.withDefaults(), now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if err := os.RemoveAll(s.tmpDir()); err != nil {
		return nil, fmt.Errorf("opening bundle store %s: clearing tmp: %w", dir, err)
	}
	for _, d := range []string{s.blobDir(), s.tmpDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("opening bundle store %s: %w", dir, err)
		}
	}
	return s, nil
}

// Limits returns the limits the store enforces, defaults filled in.
func (s *Store) Limits() Limits { return s.lim }

func (s *Store) blobDir() string { return filepath.Join(s.dir, "sha256") }
func (s *Store) tmpDir() string  { return filepath.Join(s.dir, "tmp") }

func (s *Store) path(d Digest) (string, error) {
	if _, err := ParseDigest(string(d)); err != nil {
		return "", err
	}
	return filepath.Join(s.blobDir(), d.Hex()+".tar.gz"), nil
}

// Ingest stores the bundle at src — a directory or an archive (.tar.gz,
// .tgz, .tar or .zip, recognised by content) — and returns its digest.
// Ingesting a bundle already stored marks it as recently ingested.
func (s *Store) Ingest(src string) (Digest, error) {
	return s.publish("", func(w io.Writer) (Digest, error) {
		return canonicalize(src, w, s.lim, s.tmpDir())
	})
}

// IngestStream stores the archive read from r. When want is not empty the
// bundle's digest must equal it, or nothing is stored and the error wraps
// ErrDigestMismatch. The archive is spooled to disk first (zip needs random
// access), within Limits.MaxArchiveBytes.
func (s *Store) IngestStream(r io.Reader, want Digest) (Digest, error) {
	return s.IngestChecked(r, want, nil)
}

// IngestChecked is IngestStream with a look at the bundle's content before
// it is stored: check gets the unpacked tree (its symlinks followed within
// it; permission bits not applied yet), and an error from it, returned as it
// is, refuses the bundle: nothing is stored.
//
// The temporary disk an ingest uses is bounded by the Limits: the spooled
// archive (MaxArchiveBytes) and the unpacked tree (MaxTotalBytes), and then
// the tree and its canonical archive; the spool is removed as soon as the
// tree is unpacked, and everything temporary once the ingest ends.
func (s *Store) IngestChecked(r io.Reader, want Digest, check func(fs.FS) error) (Digest, error) {
	if want != "" {
		if _, err := ParseDigest(string(want)); err != nil {
			return "", fmt.Errorf("ingesting bundle: %w", err)
		}
	}
	spool, err := os.CreateTemp(s.tmpDir(), "upload-")
	if err != nil {
		return "", fmt.Errorf("ingesting bundle: %w", err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	n, err := io.Copy(spool, io.LimitReader(r, s.lim.MaxArchiveBytes+1))
	if err != nil {
		return "", fmt.Errorf("ingesting bundle: receiving: %w", err)
	}
	if n > s.lim.MaxArchiveBytes {
		return "", fmt.Errorf("ingesting bundle: %w: archive larger than %d bytes", ErrLimit, s.lim.MaxArchiveBytes)
	}
	var checkErr error
	d, err := s.publish(want, func(w io.Writer) (Digest, error) {
		return canonicalizeArchive(spool, n, w, s.lim, s.tmpDir(), func(root *os.Root, t *tree) error {
			spool.Close()
			os.Remove(spool.Name())
			if check != nil {
				checkErr = check(stagedFS{root: root, t: t})
			}
			return checkErr
		})
	})
	if checkErr != nil {
		return "", checkErr
	}
	return d, err
}

// stagedFS reads a staged tree, following the tree's symlinks, which
// staging does not create.
type stagedFS struct {
	root *os.Root
	t    *tree
}

func (s stagedFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	target, err := s.t.resolve(".", name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if target == "" {
		target = "."
	} else if s.t.nodes[target] == nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return s.root.Open(target)
}

// publish writes a canonical bundle to a temporary file, checks its digest,
// and renames it into place durably; an existing bundle is only re-stamped.
func (s *Store) publish(want Digest, write func(io.Writer) (Digest, error)) (Digest, error) {
	tmp, err := os.CreateTemp(s.tmpDir(), "bundle-")
	if err != nil {
		return "", fmt.Errorf("ingesting bundle: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	defer tmp.Close()
	d, err := write(tmp)
	if err != nil {
		return "", fmt.Errorf("ingesting bundle: %w", err)
	}
	if want != "" && d != want {
		return "", fmt.Errorf("ingesting bundle: %w: declared %s, content is %s", ErrDigestMismatch, want, d)
	}
	if err := s.sync(tmp); err != nil {
		return "", fmt.Errorf("ingesting bundle %s: %w", d, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("ingesting bundle %s: %w", d, err)
	}
	final, _ := s.path(d)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if _, err := os.Stat(final); err == nil {
		if err := os.Chtimes(final, now, now); err != nil {
			return "", fmt.Errorf("ingesting bundle %s: %w", d, err)
		}
		return d, nil
	}
	if err := os.Chtimes(tmp.Name(), now, now); err != nil {
		return "", fmt.Errorf("ingesting bundle %s: %w", d, err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", fmt.Errorf("ingesting bundle %s: %w", d, err)
	}
	if err := s.syncDir(s.blobDir()); err != nil {
		return "", fmt.Errorf("ingesting bundle %s: %w", d, err)
	}
	return d, nil
}

func (s *Store) sync(f *os.File) error {
	if s.noSync {
		return nil
	}
	return f.Sync()
}

// syncDir makes a rename in dir durable.
func (s *Store) syncDir(dir string) error {
	if s.noSync {
		return nil
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Has reports whether the bundle is stored.
func (s *Store) Has(d Digest) bool {
	p, err := s.path(d)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// Open returns the stored canonical archive (.tar.gz) of a bundle, for
// serving it to another host.
func (s *Store) Open(d Digest) (*os.File, error) {
	p, err := s.path(d)
	if err != nil {
		return nil, fmt.Errorf("opening bundle: %w", err)
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("opening bundle %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("opening bundle %s: %w", d, err)
	}
	return f, nil
}

// List returns the stored bundles, most recently ingested first.
func (s *Store) List() ([]Bundle, error) {
	entries, err := os.ReadDir(s.blobDir())
	if err != nil {
		return nil, fmt.Errorf("listing bundles: %w", err)
	}
	var out []Bundle
	for _, e := range entries {
		hex, ok := strings.CutSuffix(e.Name(), ".tar.gz")
		d, err := ParseDigest(digestPrefix + hex)
		if !ok || err != nil {
			continue // not ours
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("listing bundles: %w", err)
		}
		out = append(out, Bundle{Digest: d, Size: info.Size(), Ingested: info.ModTime()})
	}
	slices.SortFunc(out, func(a, b Bundle) int {
		return cmp.Or(b.Ingested.Compare(a.Ingested), cmp.Compare(a.Digest, b.Digest))
	})
	return out, nil
}

// Remove deletes a bundle; removing one that is not stored is not an error.
func (s *Store) Remove(d Digest) error {
	p, err := s.path(d)
	if err != nil {
		return fmt.Errorf("removing bundle: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing bundle %s: %w", d, err)
	}
	return nil
}

// Prune keeps the keep most recently ingested bundles and every protected
// one (the live and the previous revision's), removes the rest, and returns
// what it removed. Protected bundles count towards keep when they are among
// the most recent.
func (s *Store) Prune(keep int, protect ...Digest) ([]Digest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := s.List()
	if err != nil {
		return nil, fmt.Errorf("pruning bundles: %w", err)
	}
	var removed []Digest
	for i, b := range all {
		if i < keep || slices.Contains(protect, b.Digest) {
			continue
		}
		p, _ := s.path(b.Digest)
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("pruning bundle %s: %w", b.Digest, err)
		}
		removed = append(removed, b.Digest)
	}
	return removed, nil
}

// Verify re-reads a stored bundle and checks that its content still has its
// digest and obeys the rules and limits.
func (s *Store) Verify(d Digest) error {
	err := s.readBundle(d, func(r io.Reader) error {
		x := &extractor{t: newTree(s.lim)}
		if err := extractTar(r, x); err != nil {
			return err
		}
		return checkDigest(x.t, d)
	})
	if err != nil {
		return fmt.Errorf("verifying bundle %s: %w", d, err)
	}
	return nil
}

func checkDigest(t *tree, want Digest) error {
	if got := t.digest(); got != want {
		return fmt.Errorf("%w: stored content is %s", ErrDigestMismatch, got)
	}
	return nil
}

// readBundle passes the uncompressed tar of a stored bundle to fn.
func (s *Store) readBundle(d Digest, fn func(io.Reader) error) error {
	f, err := s.Open(d)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("reading gzip: %w", err)
	}
	defer zr.Close()
	return fn(zr)
}
