package platform

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// Set is the platforms one server runs instances on, seen as one Platform:
// Launch goes to the platform the spec names, List merges what the
// platforms run, and Stop and Logs find the instance wherever it is. An
// app's blue fleet may run on one platform and its green on another, so a
// revision can move an app from processes to containers like any other
// change.
type Set struct {
	def    string
	byName map[string]Platform
	order  []Platform

	mu    sync.Mutex
	where map[string]string // instance ID → the platform last seen running it
}

// NewSet returns a Set of ps; the first is the default for an InstanceSpec
// that names no platform.
func NewSet(ps ...Platform) *Set {
	s := &Set{byName: map[string]Platform{}, where: map[string]string{}}
	for _, p := range ps {
		if s.def == "" {
			s.def = p.Name()
		}
		s.byName[p.Name()] = p
		s.order = append(s.order, p)
	}
	return s
}

// Name is the default platform's name.
func (s *Set) Name() string { return s.def }

// Get returns the platform named name (the default for ""), if the set has it.
func (s *Set) Get(name string) (Platform, bool) {
	if name == "" {
		name = s.def
	}
	p, ok := s.byName[name]
	return p, ok
}

// Names lists the platforms of the set, the default first.
func (s *Set) Names() []string {
	out := make([]string, 0, len(s.order))
	for _, p := range s.order {
		out = append(out, p.Name())
	}
	return out
}

func (s *Set) seen(name string, ins ...Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, in := range ins {
		s.where[in.ID] = name
	}
}

// Launch starts the instance on the platform spec.Platform names.
func (s *Set) Launch(ctx context.Context, spec InstanceSpec) (Instance, error) {
	p, ok := s.Get(spec.Platform)
	if !ok {
		return Instance{}, fmt.Errorf("instance %s: platform %q is not available on this server", spec.ID, spec.Platform)
	}
	in, err := p.Launch(ctx, spec)
	if err != nil {
		return in, err
	}
	in.Platform = p.Name()
	s.seen(p.Name(), in)
	return in, nil
}

// owners returns the platforms that may run id: the one last seen running
// it, or all when none was.
func (s *Set) owners(id string) []Platform {
	s.mu.Lock()
	name, ok := s.where[id]
	s.mu.Unlock()
	if ok {
		return []Platform{s.byName[name]}
	}
	return s.order
}

// Stop stops the instance on the platform that runs it (on every platform
// when the set has not seen it: Stop of an unknown ID is success).
func (s *Set) Stop(ctx context.Context, id string, grace time.Duration) error {
	var errs []error
	for _, p := range s.owners(id) {
		if err := p.Stop(ctx, id, grace); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		s.mu.Lock()
		delete(s.where, id)
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}

// List returns the instances of app on every platform, ordered by ID.
func (s *Set) List(ctx context.Context, app string) ([]Instance, error) {
	return s.ListOn(ctx, app, nil)
}

// ListOn returns the instances of app on the named platforms (all when
// names is empty), ordered by ID. A platform that cannot answer fails the
// whole list: a fleet that cannot be seen must never be taken for a dead
// one. Naming only the platforms an app uses keeps an engine that is down
// from failing apps that never ran on it.
func (s *Set) ListOn(ctx context.Context, app string, names []string) ([]Instance, error) {
	var out []Instance
	for _, p := range s.order {
		if len(names) > 0 && !slices.Contains(names, p.Name()) {
			continue
		}
		ins, err := p.List(ctx, app)
		if err != nil {
			return nil, err
		}
		for i := range ins {
			ins[i].Platform = p.Name()
		}
		s.seen(p.Name(), ins...)
		out = append(out, ins...)
	}
	slices.SortFunc(out, func(a, b Instance) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// Logs returns the instance's output from the platform that has it.
func (s *Set) Logs(ctx context.Context, id string, opts LogOptions) (io.ReadCloser, error) {
	var errs []error
	for _, p := range s.owners(id) {
		rc, err := p.Logs(ctx, id, opts)
		if err == nil {
			return rc, nil
		}
		if !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return nil, ErrNotFound
}

// Each calls fn for every platform of the set that implements T, such as
// an optional capability (removing logs, resolving images).
func Each[T any](s *Set, fn func(T)) {
	for _, p := range s.order {
		if t, ok := p.(T); ok {
			fn(t)
		}
	}
}
