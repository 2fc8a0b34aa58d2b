package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"bluegreen/internal/platform"
	"bluegreen/internal/spec"
	"bluegreen/internal/store"
)

// Instances lists what runs of app on the platforms its revisions use.
func (e *Engine) Instances(ctx context.Context, app string) ([]platform.Instance, error) {
	return e.list(ctx, app)
}

// list asks only the platforms app's revisions name, so that a Docker
// engine that is down never fails an app made of processes.
func (e *Engine) list(ctx context.Context, app string) ([]platform.Instance, error) {
	return e.plat.ListOn(ctx, app, e.platformsOf(ctx, app))
}

// platformsOf names the platforms any revision of app runs on (every
// platform when the store cannot say).
func (e *Engine) platformsOf(ctx context.Context, app string) []string {
	e.mu.Lock()
	names, ok := e.usesPlat[app]
	e.mu.Unlock()
	if ok {
		return names
	}
	revs, err := e.st.ListRevisions(ctx, app, 0)
	if err != nil {
		return nil
	}
	for _, r := range revs {
		for _, name := range specPlatforms(r.Spec, e.plat.Name()) {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	if len(names) == 0 {
		names = []string{e.plat.Name()}
	}
	e.mu.Lock()
	e.usesPlat[app] = names
	e.mu.Unlock()
	return names
}

// usesPlatform records that app has a revision on the platform named.
func (e *Engine) usesPlatform(ctx context.Context, app, name string) {
	names := e.platformsOf(ctx, app)
	if slices.Contains(names, name) {
		return
	}
	e.mu.Lock()
	e.usesPlat[app] = append(slices.Clone(names), name)
	e.mu.Unlock()
}

// stopStrays stops the instances of apps the store does not know (left by a
// store restored from an older backup, say): each platform lists only what
// this server owns, so nothing of another server is touched. A platform
// that cannot be asked is skipped and logged; its strays wait for the next
// start.
func (e *Engine) stopStrays(ctx context.Context, apps []store.App) {
	known := map[string]bool{}
	for _, a := range apps {
		known[a.Name] = true
	}
	for _, name := range e.plat.Names() {
		ins, err := e.plat.ListOn(ctx, "", []string{name})
		if errors.Is(err, platform.ErrUnavailable) {
			// An engine that is down (or not installed) was told of at start.
			e.log.Debug("looking for instances of unknown apps", "platform", name, "err", err)
			continue
		}
		if err != nil {
			e.log.Warn("looking for instances of unknown apps", "platform", name, "err", err)
			continue
		}
		for _, in := range ins {
			if known[in.App] {
				continue
			}
			err := e.plat.Stop(ctx, in.ID, 10*time.Second)
			e.log.Warn("stopped an instance of an app the store does not know", "platform", name, "instance", in.ID, "app", in.App, "err", err)
			e.event(ctx, in.App, "", "instance.stray", fmt.Sprintf("instance %s (%s) belongs to no app the store knows: stopped it", in.ID, name),
				map[string]any{"instance": in.ID, "platform": name})
		}
	}
}

// specPlatforms names the platforms a spec's services run on (def when the
// spec does not parse).
func specPlatforms(raw []byte, def string) []string {
	s, err := spec.Parse(raw, spec.FileName)
	if err != nil {
		return []string{def}
	}
	var out []string
	for _, m := range s.Members() {
		if m.Platform != "" && !slices.Contains(out, m.Platform) {
			out = append(out, m.Platform)
		}
	}
	if len(out) == 0 {
		out = []string{def}
	}
	return out
}
