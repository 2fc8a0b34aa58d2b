// Package params is the parameter store: hierarchical names, every write a
// new version, plain and secure (AES-256-GCM encrypted) values, and pinning
// so that a revision always runs with the parameter versions it was built
// with.
//
// A delete appends a tombstone version instead of removing rows: history
// stays readable and a revision pinned to an older version still resolves,
// so rolling back to it keeps working after the param is gone.
package params

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"bluegreen/internal/audit"
	"bluegreen/internal/store"
)

// Type is a parameter's kind.
type Type string

// Parameter types. Deleted marks a tombstone version.
const (
	TypeString  Type = "string"
	TypeSecure  Type = "secure"
	TypeDeleted Type = "deleted"
)

// ErrDecrypt reports a secure value that does not decrypt with the key in
// use: a wrong key or a tampered row. Never silently garbage.
var ErrDecrypt = errors.New("cannot decrypt secure value (wrong key or tampered data)")

// ErrDeleted reports a param whose latest version is a tombstone. It also
// matches store.ErrNotFound.
var ErrDeleted = fmt.Errorf("deleted: %w", store.ErrNotFound)

// Info describes one version of a param, without its value.
type Info struct {
	Name      string
	Version   int64
	Type      Type
	CreatedBy string
	CreatedAt time.Time
}

// Param is one version of a param with its value (redacted when printed).
type Param struct {
	Info
	Value Value
}

// Store reads and writes params in a store.Store.
type Store struct {
	st   *store.Store
	aead cipher.AEAD
}

// Open returns the parameter store of st, with the key from LoadKey.
func Open(ctx context.Context, st *store.Store) (*Store, error) {
	key, err := LoadKey(st.Dir())
	if err != nil {
		return nil, fmt.Errorf("loading params key: %w", err)
	}
	return New(ctx, st, key)
}

// New returns the parameter store of st using key (KeySize bytes). It
// fails with ErrDecrypt when the database was written with another key, so
// a wrong key stops the server at start rather than at the next deployment.
func New(ctx context.Context, st *store.Store, key []byte) (*Store, error) {
	s, err := newUnchecked(st, key)
	if err != nil {
		return nil, err
	}
	if err := s.checkKey(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func newUnchecked(st *store.Store, key []byte) (*Store, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("params key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("params key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("params key: %w", err)
	}
	return &Store{st: st, aead: aead}, nil
}

// WriteOptions qualify Put and Delete.
type WriteOptions struct {
	CreatedBy string
	// ExpectVersion, when > 0, makes the write fail with store.ErrConflict
	// unless it is the latest version, so two editors cannot overwrite each
	// other unknowingly.
	ExpectVersion int64
}

// Put writes a new version of name and returns it.
func (s *Store) Put(ctx context.Context, name string, typ Type, value string, opts WriteOptions) (Info, error) {
	if err := ValidateName(name); err != nil {
		return Info{}, err
	}
	if typ != TypeString && typ != TypeSecure {
		return Info{}, fmt.Errorf("param %s: type %q: want %q or %q", name, typ, TypeString, TypeSecure)
	}
	return s.write(ctx, name, typ, value, opts)
}

// Delete appends a tombstone to name. Pins to earlier versions still
// resolve; Pin refuses the name from now on.
func (s *Store) Delete(ctx context.Context, name string, opts WriteOptions) (Info, error) {
	if err := ValidateName(name); err != nil {
		return Info{}, err
	}
	return s.write(ctx, name, TypeDeleted, "", opts)
}

func (s *Store) write(ctx context.Context, name string, typ Type, value string, opts WriteOptions) (info Info, err error) {
	err = s.st.Update(ctx, func(tx *store.Tx) error {
		latest, err := tx.LatestParamVersion(ctx, name)
		if err != nil {
			return err
		}
		if opts.ExpectVersion > 0 && latest != opts.ExpectVersion {
			return fmt.Errorf("param %s: %w: expected version %d, latest is %d", name, store.ErrConflict, opts.ExpectVersion, latest)
		}
		if typ == TypeDeleted {
			prev, err := tx.GetParamVersion(ctx, name, 0)
			if err != nil {
				return err
			}
			if Type(prev.Type) == TypeDeleted {
				return fmt.Errorf("param %s: %w", name, ErrDeleted)
			}
		}
		version := latest + 1
		stored := []byte(value)
		if typ == TypeSecure {
			stored = s.seal(name, version, value)
		}
		row, err := tx.InsertParamVersion(ctx, store.ParamVersion{
			Name: name, Version: version, Type: string(typ), Value: stored, CreatedBy: opts.CreatedBy,
		})
		if err != nil {
			return err
		}
		info = infoOf(row)
		// The audit trail names what changed, never the value.
		kind := "param.put"
		if typ == TypeDeleted {
			kind = "param.delete"
		}
		msg, fields := audit.Record(ctx, fmt.Sprintf("%s version %d", name, version),
			map[string]any{"name": name, "version": version, "type": string(typ)})
		if _, ok := fields["by"]; !ok && opts.CreatedBy != "" {
			fields["by"] = map[string]any{"token": opts.CreatedBy}
		}
		_, err = tx.AppendEvent(ctx, store.Event{Kind: kind, Message: msg, Fields: fields})
		return err
	})
	return info, err
}

// Get returns one version of name (the latest when version is 0),
// decrypting a secure value. The latest version being a tombstone is
// ErrDeleted.
func (s *Store) Get(ctx context.Context, name string, version int64) (Param, error) {
	row, err := s.st.GetParamVersion(ctx, name, version)
	if err != nil {
		return Param{}, err
	}
	return s.param(row)
}

func (s *Store) param(row store.ParamVersion) (Param, error) {
	p := Param{Info: infoOf(row)}
	switch p.Type {
	case TypeString:
		p.Value = StringValue(string(row.Value))
	case TypeSecure:
		plain, err := s.open(row.Name, row.Version, row.Value)
		if err != nil {
			return Param{}, err
		}
		p.Value = SecureValue(plain)
	case TypeDeleted:
		return Param{}, fmt.Errorf("param %s version %d: %w", row.Name, row.Version, ErrDeleted)
	default:
		return Param{}, fmt.Errorf("param %s version %d: unknown type %q", row.Name, row.Version, row.Type)
	}
	return p, nil
}

// History lists every version of name, oldest first, tombstones included.
func (s *Store) History(ctx context.Context, name string) ([]Info, error) {
	rows, err := s.st.ParamHistory(ctx, name)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("param %s: %w", name, store.ErrNotFound)
	}
	out := make([]Info, len(rows))
	for i, r := range rows {
		out[i] = infoOf(r)
	}
	return out, nil
}

// List returns the latest version of each live param under the path
// prefix: "/shop" lists "/shop/X" but not "/shopping/X"; "" lists all.
func (s *Store) List(ctx context.Context, prefix string) ([]Info, error) {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	rows, err := s.st.LatestParams(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, r := range rows {
		if Type(r.Type) != TypeDeleted {
			out = append(out, infoOf(r))
		}
	}
	return out, nil
}

// Pin returns the current version of each named param, for a revision to
// record. Every missing or deleted name is reported in one error
// (errors.Is store.ErrNotFound).
func (s *Store) Pin(ctx context.Context, names []string) (map[string]int64, error) {
	if err := checkEnvNames(names); err != nil {
		return nil, err
	}
	pins := make(map[string]int64, len(names))
	var missing, deleted []string
	for _, name := range names {
		row, err := s.st.GetParamVersion(ctx, name, 0)
		switch {
		case errors.Is(err, store.ErrNotFound):
			missing = append(missing, name)
		case err != nil:
			return nil, err
		case Type(row.Type) == TypeDeleted:
			deleted = append(deleted, name)
		default:
			pins[name] = row.Version
		}
	}
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, "not found: "+strings.Join(missing, ", "))
	}
	if len(deleted) > 0 {
		problems = append(problems, "deleted: "+strings.Join(deleted, ", "))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("pinning params: %s: %w", strings.Join(problems, "; "), store.ErrNotFound)
	}
	return pins, nil
}

// Resolve reads the pinned versions and returns the environment they
// define: last name segment → value, secure values decrypted.
func (s *Store) Resolve(ctx context.Context, pins map[string]int64) (Env, error) {
	names := make([]string, 0, len(pins))
	for name := range pins {
		names = append(names, name)
	}
	sort.Strings(names)
	if err := checkEnvNames(names); err != nil {
		return nil, err
	}
	env := make(Env, len(pins))
	for _, name := range names {
		row, err := s.st.GetParamVersion(ctx, name, pins[name])
		if err != nil {
			return nil, fmt.Errorf("resolving pinned params: %w", err)
		}
		p, err := s.param(row)
		if err != nil {
			return nil, fmt.Errorf("resolving pinned params: %w", err)
		}
		env[EnvName(name)] = p.Value
	}
	return env, nil
}

// checkEnvNames validates names and refuses two that would set the same
// variable (/a/TOKEN and /b/TOKEN): one would silently win.
func checkEnvNames(names []string) error {
	seen := make(map[string]string, len(names))
	for _, name := range names {
		if err := ValidateName(name); err != nil {
			return err
		}
		env := EnvName(name)
		if other, ok := seen[env]; ok && other != name {
			return fmt.Errorf("params %s and %s both set environment variable %s", other, name, env)
		}
		seen[env] = name
	}
	return nil
}

func infoOf(r store.ParamVersion) Info {
	return Info{Name: r.Name, Version: r.Version, Type: Type(r.Type), CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt}
}
