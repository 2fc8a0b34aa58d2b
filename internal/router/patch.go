package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Patch is the body of PATCH /routes: apps to put into the running table,
// each replacing the app of that name whole, and apps to take out of it
// (null). Every other app and every top-level setting stays as it runs.
//
//	{"apps": {"shop": {"fleets": {…}}, "old-app": null}}
type Patch struct {
	Apps map[string]*AppConfig `json:"apps"`
}

// InvalidTableError is a table that fails validation, as opposed to one
// the router could not put in place (a listener it cannot open).
type InvalidTableError struct{ Err error }

func (e *InvalidTableError) Error() string { return e.Err.Error() }
func (e *InvalidTableError) Unwrap() error { return e.Err }

// ParsePatchJSON decodes a patch strictly. It does not validate the apps:
// only the table they make with the running one can be validated.
func ParsePatchJSON(data []byte) (*Patch, error) {
	var raw struct {
		Apps *map[string]*AppConfig `json:"apps"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("decoding routes patch: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decoding routes patch: trailing data after the JSON object")
	}
	if raw.Apps == nil {
		return nil, errors.New(`routes patch: "apps" is required: the apps to put, and null for each app to remove`)
	}
	return &Patch{Apps: *raw.Apps}, nil
}

// ApplyPatch makes the running table with p's apps put in or taken out the
// new routing table, in one atomic step, as Apply would the whole table:
// the table is validated whole (hosts claimed twice, a listener's TLS,
// listeners that cannot be opened), and when it is refused the running
// table stays. It returns the new generation. The apps of p are the
// router's afterwards: the caller must not change them.
//
// The patch is applied under the lock that orders every change, so two
// patches of different apps never lose one another.
func (r *Router) ApplyPatch(p *Patch) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, errors.New("router is shut down")
	}
	if err := r.refuseApply(); err != nil {
		return 0, err
	}
	cur := r.table.Load().cfg
	next := *cur
	// The apps that stay are shared with the running table: nothing changes
	// an app once it is in a table (validation filled its defaults in).
	next.Apps = make(map[string]*AppConfig, len(cur.Apps)+len(p.Apps))
	for name, a := range cur.Apps {
		next.Apps[name] = a
	}
	for name, a := range p.Apps {
		if a == nil {
			delete(next.Apps, name)
		} else {
			next.Apps[name] = a
		}
	}
	if err := next.ValidateAgainst(cur); err != nil {
		return 0, &InvalidTableError{err}
	}
	changed := make(map[string]bool, len(p.Apps))
	for name := range p.Apps {
		changed[name] = true
	}
	return r.applyLocked(&next, changed)
}
