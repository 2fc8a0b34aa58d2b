package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Revision is an immutable version of an app: what to run (Source), how
// (Spec, the bluegreen.yaml text) and with which parameter versions (Params).
type Revision struct {
	App        string
	Generation int64 // 1, 2, 3… per app, assigned by CreateRevision
	// Source is "bundle:sha256:<hex>" for a bundle; image references later.
	Source string
	Spec   []byte
	// Params pins each parameter the spec names to a version.
	Params    map[string]int64
	CreatedBy string
	CreatedAt time.Time
	Message   string
	// Image is what the revision's image reference meant when it was
	// created; nil for a revision that runs processes.
	Image *Image
}

// Image is an image reference pinned to its content: every instance of the
// revision runs ID, wherever Ref points later.
type Image struct {
	Ref    string `json:"ref"`
	ID     string `json:"id"`
	Digest string `json:"digest,omitempty"`
	// Services are the images of the services of a stack that run
	// containers, by service; Ref and ID are then empty.
	Services map[string]Image `json:"services,omitempty"`
}

// CreateRevision stores r under the app's next generation, creating the app
// if it does not exist, and returns it with Generation and CreatedAt set.
// r.Generation and r.CreatedAt are ignored.
func (tx *Tx) CreateRevision(ctx context.Context, r Revision) (Revision, error) {
	if r.Source == "" {
		return Revision{}, fmt.Errorf("revision of app %s: source is empty", r.App)
	}
	if _, err := tx.EnsureApp(ctx, r.App); err != nil {
		return Revision{}, err
	}
	params := r.Params
	if params == nil {
		params = map[string]int64{}
	}
	pj, err := json.Marshal(params)
	if err != nil {
		return Revision{}, fmt.Errorf("revision of app %s: encoding params: %w", r.App, err)
	}
	spec := r.Spec
	if spec == nil {
		spec = []byte{}
	}
	var image []byte
	if r.Image != nil {
		if image, err = json.Marshal(r.Image); err != nil {
			return Revision{}, fmt.Errorf("revision of app %s: encoding image: %w", r.App, err)
		}
	}
	r.CreatedAt = fromNanos(nanos(tx.s.now()))
	// The write lock is held from BEGIN, so MAX()+1 cannot race; the primary
	// key would reject a duplicate anyway.
	err = tx.tx.QueryRowContext(ctx, `
		INSERT INTO revisions (app, generation, source, spec, params, created_by, created_at, message, image)
		SELECT ?, COALESCE(MAX(generation), 0) + 1, ?, ?, ?, ?, ?, ?, ?
		FROM revisions WHERE app = ?
		RETURNING generation`,
		r.App, r.Source, spec, string(pj), r.CreatedBy, nanos(r.CreatedAt), r.Message, string(image), r.App,
	).Scan(&r.Generation)
	if err != nil {
		return Revision{}, fmt.Errorf("creating revision of app %s: %w", r.App, err)
	}
	r.Params = params
	r.Spec = spec
	return r, nil
}

// CreateRevision stores a new revision in its own transaction.
func (s *Store) CreateRevision(ctx context.Context, r Revision) (out Revision, err error) {
	err = s.Update(ctx, func(tx *Tx) error {
		out, err = tx.CreateRevision(ctx, r)
		return err
	})
	return out, err
}

const revisionCols = `app, generation, source, spec, params, created_by, created_at, message, image`

// GetRevision reads one revision.
func (s *Store) GetRevision(ctx context.Context, app string, generation int64) (Revision, error) {
	return getRevision(ctx, s.r, app, generation)
}

// GetRevision reads one revision.
func (tx *Tx) GetRevision(ctx context.Context, app string, generation int64) (Revision, error) {
	return getRevision(ctx, tx.tx, app, generation)
}

// ListRevisions returns an app's revisions, newest first, at most limit
// (all when limit <= 0).
func (s *Store) ListRevisions(ctx context.Context, app string, limit int) ([]Revision, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.r.QueryContext(ctx,
		`SELECT `+revisionCols+` FROM revisions WHERE app = ? ORDER BY generation DESC LIMIT ?`, app, limit)
	if err != nil {
		return nil, fmt.Errorf("listing revisions of app %s: %w", app, err)
	}
	defer rows.Close()
	var out []Revision
	for rows.Next() {
		r, err := scanRevision(rows)
		if err != nil {
			return nil, fmt.Errorf("listing revisions of app %s: %w", app, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing revisions of app %s: %w", app, err)
	}
	return out, nil
}

func getRevision(ctx context.Context, q querier, app string, generation int64) (Revision, error) {
	r, err := scanRevision(q.QueryRowContext(ctx,
		`SELECT `+revisionCols+` FROM revisions WHERE app = ? AND generation = ?`, app, generation))
	if errors.Is(err, sql.ErrNoRows) {
		return Revision{}, fmt.Errorf("revision %s#%d: %w", app, generation, ErrNotFound)
	}
	if err != nil {
		return Revision{}, fmt.Errorf("reading revision %s#%d: %w", app, generation, err)
	}
	return r, nil
}

func scanRevision(r scanner) (Revision, error) {
	var rev Revision
	var params, image string
	var created int64
	if err := r.Scan(&rev.App, &rev.Generation, &rev.Source, &rev.Spec, &params, &rev.CreatedBy, &created, &rev.Message, &image); err != nil {
		return Revision{}, err
	}
	rev.CreatedAt = fromNanos(created)
	if err := json.Unmarshal([]byte(params), &rev.Params); err != nil {
		return Revision{}, fmt.Errorf("revision %s#%d: decoding params: %w", rev.App, rev.Generation, err)
	}
	if image != "" {
		rev.Image = &Image{}
		if err := json.Unmarshal([]byte(image), rev.Image); err != nil {
			return Revision{}, fmt.Errorf("revision %s#%d: decoding image: %w", rev.App, rev.Generation, err)
		}
	}
	return rev, nil
}
