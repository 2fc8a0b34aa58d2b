package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"bluegreen/internal/artifact"
	"bluegreen/internal/params"
	"bluegreen/internal/platform"
	"bluegreen/internal/platform/runas"
	"bluegreen/internal/spec"
	"bluegreen/internal/store"
)

// revision is a stored revision with its spec parsed.
type revision struct {
	store.Revision
	Spec *spec.Spec
}

// loadRevision reads a revision and parses its spec. Revisions are
// immutable, so the result is kept (see revisionCache) and shared: callers
// must not change it.
func (e *Engine) loadRevision(ctx context.Context, app string, generation int64) (*revision, error) {
	key := app + "/" + strconv.FormatInt(generation, 10)
	e.mu.Lock()
	rev := e.revs[key]
	e.mu.Unlock()
	if rev != nil {
		return rev, nil
	}
	r, err := e.st.GetRevision(ctx, app, generation)
	if err != nil {
		return nil, err
	}
	s, err := spec.Parse(r.Spec, spec.FileName)
	if err != nil {
		return nil, fmt.Errorf("revision %d of app %s: %w", generation, app, err)
	}
	rev = &revision{Revision: r, Spec: s}
	e.mu.Lock()
	if e.revs == nil {
		e.revs = map[string]*revision{}
	}
	if len(e.revs) >= revisionCache {
		for k := range e.revs { // any one: the map's order is random
			delete(e.revs, k)
			break
		}
	}
	e.revs[key] = rev
	e.mu.Unlock()
	return rev, nil
}

// revisionCache bounds the parsed revisions kept: every pass of a
// deployment and every look of the upkeep at a live fleet reads its
// revisions, and parsing a spec costs more than the rest of a look.
const revisionCache = 4096

// bundleDigest is the digest of a revision's bundle.
func bundleDigest(r *revision) (artifact.Digest, error) {
	d, ok := strings.CutPrefix(r.Source, "bundle:")
	if !ok {
		return "", fmt.Errorf("revision %d of app %s: source %q is not a bundle", r.Generation, r.App, r.Source)
	}
	return artifact.Digest(d), nil
}

// unpack makes sure the revision's bundle is unpacked in its directory. A
// finished unpack leaves a marker, so a crash half-way is redone cleanly.
func (e *Engine) unpack(r *revision) (string, error) {
	dir := e.revisionDir(r.App, r.Generation)
	defer e.unpacking.Lock(dir)()
	marker := dir + ".unpacked"
	if _, err := os.Stat(marker); err == nil {
		_, err := e.userOf(r) // its user may have changed since
		return dir, err
	}
	d, err := bundleDigest(r)
	if err != nil {
		return "", err
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("clearing %s: %w", dir, err)
	}
	// The directory is made, closed to all but the revision's user, before
	// anything is unpacked into it.
	if _, err := e.userOf(r); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("unpacking revision %d of app %s: %w", r.Generation, r.App, err)
	}
	if err := e.opts.Bundles.Unpack(d, dir); err != nil {
		return "", fmt.Errorf("unpacking revision %d of app %s: %w", r.Generation, r.App, err)
	}
	if err := runas.ShareTree(dir); err != nil {
		return "", fmt.Errorf("unpacking revision %d of app %s: %w", r.Generation, r.App, err)
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		return "", fmt.Errorf("unpacking revision %d of app %s: %w", r.Generation, r.App, err)
	}
	return dir, nil
}

// adoptUnpacked makes tree, the revision's bundle as CreateRevision
// unpacked it to check it, the revision's directory: its first deployment
// then finds it unpacked instead of unpacking the same bundle again, which
// for a bundle that carries a binary is most of what provisioning costs.
// tree must be on the file system of the revisions directory. On failure
// the directory is left without its marker, and unpack does the work.
func (e *Engine) adoptUnpacked(r *revision, tree string) error {
	dir := e.revisionDir(r.App, r.Generation)
	defer e.unpacking.Lock(dir)()
	marker := dir + ".unpacked"
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	// The directory is made, closed to all but the revision's user, before
	// anything is moved into it, as unpack does.
	if _, err := e.userOf(r); err != nil {
		return err
	}
	ents, err := os.ReadDir(tree)
	if err != nil {
		return err
	}
	for _, ent := range ents {
		if err := os.Rename(filepath.Join(tree, ent.Name()), filepath.Join(dir, ent.Name())); err != nil {
			return err
		}
	}
	if err := runas.ShareTree(dir); err != nil {
		return err
	}
	return os.WriteFile(marker, nil, 0o644)
}

// InstanceID names instance i of a revision in a slot: APP-GENERATION-SLOT-INDEX.
func InstanceID(app string, generation int64, slot string, i int) string {
	return fmt.Sprintf("%s-%d-%s-%d", app, generation, slot, i)
}

// fleet is one revision running in one slot.
type fleet struct {
	rev       *revision
	slot      string
	instances int
}

// instanceSpec says how to run instance i of the fleet.
func (e *Engine) instanceSpec(ctx context.Context, f fleet, i int) (platform.InstanceSpec, error) {
	dir, err := e.unpack(f.rev)
	if err != nil {
		return platform.InstanceSpec{}, err
	}
	env, err := e.opts.Params.Resolve(ctx, f.rev.Params)
	if err != nil {
		return platform.InstanceSpec{}, fmt.Errorf("revision %d of app %s: %w", f.rev.Generation, f.rev.App, err)
	}
	user, err := e.userOf(f.rev)
	if err != nil {
		return platform.InstanceSpec{}, err
	}
	id := InstanceID(f.rev.App, f.rev.Generation, f.slot, i)
	vars := map[string]string{}
	for k, v := range env {
		vars[k] = v.Reveal()
	}
	for _, name := range serverParams(f.rev.Spec) {
		delete(vars, params.EnvName(name))
	}
	vars["BG_APP"] = f.rev.App
	vars["BG_REVISION"] = strconv.FormatInt(f.rev.Generation, 10)
	vars["BG_FLEET"] = f.slot
	vars["BG_INSTANCE"] = id
	w := f.rev.Spec.Workload()
	is := platform.InstanceSpec{
		ID: id, App: f.rev.App, Revision: f.rev.Generation, Fleet: f.slot, Index: i,
		Dir: dir, Command: w.Command, Env: w.Env, Vars: vars,
		StopSignal: w.StopSignal, StopTimeout: w.StopTimeout.D(), User: user,
	}
	if err := runSpec(f.rev, env, &is); err != nil {
		return platform.InstanceSpec{}, err
	}
	return is, nil
}

// fleetState is what runs of a fleet.
type fleetState struct {
	running []platform.Instance // sorted by index
	exited  []platform.Instance
}

// containers lists the fleet's container IDs (none on a platform of
// processes).
func (fs fleetState) containers() []string {
	var out []string
	for _, in := range fs.running {
		if in.Container != "" {
			out = append(out, in.Container)
		}
	}
	return out
}

func (fs fleetState) targets() []string {
	out := make([]string, 0, len(fs.running))
	for _, in := range fs.running {
		out = append(out, in.Address)
	}
	return out
}

// observe lists the fleet's instances on the platform.
func (e *Engine) observe(ctx context.Context, f fleet) (fleetState, error) {
	all, err := e.list(ctx, f.rev.App)
	if err != nil {
		return fleetState{}, fmt.Errorf("listing instances of app %s: %w", f.rev.App, err)
	}
	var fs fleetState
	for _, in := range all {
		if in.Fleet != f.slot || in.Revision != f.rev.Generation || in.Index >= f.instances {
			continue
		}
		if in.State == platform.StateRunning {
			fs.running = append(fs.running, in)
		} else {
			fs.exited = append(fs.exited, in)
		}
	}
	sort.Slice(fs.running, func(i, j int) bool { return fs.running[i].Index < fs.running[j].Index })
	return fs, nil
}

// ensure launches every instance of the fleet that does not run: Launch is
// idempotent by ID, so instances already running are adopted as they are.
// The missing ones are launched at once (a container takes the engine a
// tenth of a second to create and start), and ensure returns those it
// launched anew, by index.
func (e *Engine) ensure(ctx context.Context, f fleet) ([]platform.Instance, error) {
	fs, err := e.observe(ctx, f)
	if err != nil {
		return nil, err
	}
	running := map[int]bool{}
	for _, in := range fs.running {
		running[in.Index] = true
	}
	var specs []platform.InstanceSpec
	for i := 0; i < f.instances; i++ {
		if running[i] {
			continue
		}
		is, err := e.instanceSpec(ctx, f, i)
		if err != nil {
			return nil, err
		}
		specs = append(specs, is)
	}
	if len(specs) == 0 {
		return nil, nil
	}
	defer forgetListed(ctx, f.rev.App)
	results := make([]platform.Instance, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, is := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e.plat.Launch(ctx, is) // the platform's error names the instance
		}()
	}
	wg.Wait()
	var launched []platform.Instance
	for i := range specs {
		if errs[i] == nil {
			launched = append(launched, results[i])
		}
	}
	return launched, errors.Join(errs...)
}

// stopWhere stops the app's instances that match, in parallel, each with
// its spec's stop timeout, and returns their IDs.
func (e *Engine) stopWhere(ctx context.Context, app string, grace time.Duration, match func(platform.Instance) bool) ([]string, error) {
	all, err := e.list(ctx, app)
	if err != nil {
		return nil, fmt.Errorf("listing instances of app %s: %w", app, err)
	}
	var ids []string
	defer forgetListed(ctx, app)
	errs := make(chan error, len(all))
	for _, in := range all {
		if !match(in) {
			continue
		}
		ids = append(ids, in.ID)
		go func(id string) {
			if err := e.plat.Stop(ctx, id, grace); err != nil {
				errs <- fmt.Errorf("stopping instance %s: %w", id, err)
				return
			}
			errs <- nil
		}(in.ID)
	}
	var all2 []error
	for range ids {
		if err := <-errs; err != nil {
			all2 = append(all2, err)
		}
	}
	return ids, errors.Join(all2...)
}

// stopFleet stops every instance of a revision in a slot.
func (e *Engine) stopFleet(ctx context.Context, f fleet) ([]string, error) {
	grace := f.rev.Spec.Workload().StopTimeout.D()
	return e.stopWhere(ctx, f.rev.App, grace, func(in platform.Instance) bool {
		return in.Fleet == f.slot && in.Revision == f.rev.Generation
	})
}

// liveFleet is the app's live fleet, or ok=false when nothing is live.
func (e *Engine) liveFleet(ctx context.Context, a store.App) (fleet, bool, error) {
	if a.LiveGeneration == 0 {
		return fleet{}, false, nil
	}
	rev, err := e.loadRevision(ctx, a.Name, a.LiveGeneration)
	if err != nil {
		return fleet{}, false, err
	}
	n := a.LiveInstances
	if n <= 0 {
		n = rev.Spec.Workload().Instances
	}
	return fleet{rev: rev, slot: a.LiveSlot, instances: n}, true, nil
}

// maintain keeps an app without an active deployment as it should be: its
// live fleet complete (dead instances replaced, running ones adopted), the
// router serving it, and nothing else of the app running — except the
// green a rollback was told to keep.
func (e *Engine) maintain(ctx context.Context, app string) error {
	unlock := e.lockApp(app)
	defer unlock()
	ctx = withListMemo(ctx)
	if _, err := e.st.ActiveDeployment(ctx, app); err == nil {
		return nil // a deployment started meanwhile; its runner owns the app
	}
	a, err := e.st.GetApp(ctx, app)
	if err != nil {
		return err
	}
	live, ok, err := e.liveFleet(ctx, a)
	if err != nil {
		return err
	}
	// What a rollback kept is looked up only when something is to stop.
	var kept func(platform.Instance) bool
	keep := func(in platform.Instance) bool {
		if kept == nil {
			kept = e.keptGreen(ctx, app)
		}
		return kept(in)
	}
	if !ok {
		if err := e.opts.Traffic.Route(ctx, app, nil); err != nil {
			return err
		}
		_, err := e.stopWhere(ctx, app, 30*time.Second, func(in platform.Instance) bool { return !keep(in) })
		return err
	}
	launched, err := e.ensure(ctx, live)
	for _, in := range launched {
		e.event(ctx, app, "", "instance.replaced", fmt.Sprintf("instance %s of the live fleet was not running; started it again at %s", in.ID, in.Address),
			map[string]any{"instance": in.ID, "address": in.Address})
	}
	if err != nil {
		return err
	}
	fs, err := e.observe(ctx, live)
	if err != nil {
		return err
	}
	cfg, err := e.routeConfig(ctx, live.rev, nil, []fleetRoute{routeFleet(live.rev, live.slot, RoleBlue, 100, fs.targets(), false)}, "")
	if err != nil {
		return err
	}
	if err := e.opts.Traffic.Route(ctx, app, cfg); err != nil {
		return err
	}
	_, err = e.stopWhere(ctx, app, live.rev.Spec.Workload().StopTimeout.D(), func(in platform.Instance) bool {
		return !(in.Fleet == live.slot && in.Revision == live.rev.Generation && in.Index < live.instances) && !keep(in)
	})
	return err
}

// keptGreen matches the instances of the app's last deployment when it
// rolled back with keep_green_on_rollback: they stay for debugging until
// the next deployment.
func (e *Engine) keptGreen(ctx context.Context, app string) func(platform.Instance) bool {
	none := func(platform.Instance) bool { return false }
	ds, err := e.st.ListDeployments(ctx, app, false, 1)
	if err != nil || len(ds) == 0 || ds[0].Outcome != store.OutcomeRolledBack {
		return none
	}
	det, err := decodeDetails(ds[0])
	if err != nil {
		return none
	}
	rev, err := e.loadRevision(ctx, app, ds[0].ToGeneration)
	if err != nil || !rev.Spec.Retire.KeepGreenOnRollback {
		return none
	}
	return func(in platform.Instance) bool { return in.Fleet == det.Slot && in.Revision == ds[0].ToGeneration }
}
