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

func (e *Engine) loadRevision(ctx context.Context, app string, generation int64) (*revision, error) {
	r, err := e.st.GetRevision(ctx, app, generation)
	if err != nil {
		return nil, err
	}
	s, err := spec.Parse(r.Spec, spec.FileName)
	if err != nil {
		return nil, fmt.Errorf("revision %d of app %s: %w", generation, app, err)
	}
	return &revision{Revision: r, Spec: s}, nil
}

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

// InstanceID names instance i of a revision in a slot: APP-GENERATION-SLOT-INDEX.
func InstanceID(app string, generation int64, slot string, i int) string {
	return fmt.Sprintf("%s-%d-%s-%d", app, generation, slot, i)
}

// ServiceInstanceID names instance i of a service of a stack:
// APP-GENERATION-SLOT-SERVICE-INDEX; the instances of an app of one
// service (service "") are named by InstanceID.
func ServiceInstanceID(app string, generation int64, slot, service string, i int) string {
	if service == "" {
		return InstanceID(app, generation, slot, i)
	}
	return fmt.Sprintf("%s-%d-%s-%s-%d", app, generation, slot, service, i)
}

// fleet is one revision running in one slot: every service of it.
type fleet struct {
	rev  *revision
	slot string
	// instances is the instance count of an app of one service; counts
	// those of a stack's services (a service missing from it has its
	// spec's).
	instances int
	counts    map[string]int
}

// count is how many instances service m has in the fleet.
func (f fleet) count(m string) int {
	if m == "" && !f.rev.Spec.IsStack() {
		return f.instances
	}
	if n, ok := f.counts[m]; ok {
		return n
	}
	if mem, ok := f.rev.Spec.Member(m); ok {
		return mem.Workload.Instances
	}
	return 0
}

// total is the fleet's instance count, every service together.
func (f fleet) total() int {
	n := 0
	for _, m := range f.rev.Spec.Members() {
		n += f.count(m.Name)
	}
	return n
}

// owns says whether an instance is one of the fleet's.
func (f fleet) owns(in platform.Instance) bool {
	if in.Fleet != f.slot || in.Revision != f.rev.Generation {
		return false
	}
	if _, ok := f.rev.Spec.Member(in.Service); !ok {
		return false
	}
	return in.Index < f.count(in.Service)
}

// instanceSpec says how to run instance i of service m of the fleet.
func (e *Engine) instanceSpec(ctx context.Context, f fleet, m spec.Member, i int) (platform.InstanceSpec, error) {
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
	urls, err := e.serviceURLs(ctx, f.rev, f.slot)
	if err != nil {
		return platform.InstanceSpec{}, err
	}
	id := ServiceInstanceID(f.rev.App, f.rev.Generation, f.slot, m.Name, i)
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
	w := m.Workload
	command, wenv := w.Command, w.Env
	if f.rev.Spec.IsStack() {
		vars["BG_SERVICE"] = m.Name
		// Every service of the stack, at its address of this fleet's own
		// colour, unless a param of the same name is set.
		for name, url := range urls {
			if _, set := vars[spec.ServiceURLVar(name)]; !set {
				vars[spec.ServiceURLVar(name)] = url
			}
		}
		command, wenv = expandServices(command, wenv, urls)
	}
	is := platform.InstanceSpec{
		ID: id, App: f.rev.App, Revision: f.rev.Generation, Fleet: f.slot, Service: m.Name, Index: i,
		Dir: dir, Command: command, Env: wenv, Vars: vars,
		StopSignal: w.StopSignal, StopTimeout: w.StopTimeout.D(), User: user,
	}
	if err := runSpec(f.rev, m, env, urls, &is); err != nil {
		return platform.InstanceSpec{}, err
	}
	return is, nil
}

// fleetState is what runs of a fleet.
type fleetState struct {
	running []platform.Instance // sorted by service and index
	exited  []platform.Instance
}

// of is the part of the fleet's state that belongs to service m.
func (fs fleetState) of(m string) fleetState {
	var out fleetState
	for _, in := range fs.running {
		if in.Service == m {
			out.running = append(out.running, in)
		}
	}
	for _, in := range fs.exited {
		if in.Service == m {
			out.exited = append(out.exited, in)
		}
	}
	return out
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
		if !f.owns(in) {
			continue
		}
		if in.State == platform.StateRunning {
			fs.running = append(fs.running, in)
		} else {
			fs.exited = append(fs.exited, in)
		}
	}
	sort.Slice(fs.running, func(i, j int) bool {
		a, b := fs.running[i], fs.running[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		return a.Index < b.Index
	})
	return fs, nil
}

// ensure launches every instance of the fleet that does not run, service
// by service in dependency order: Launch is idempotent by ID, so instances
// already running are adopted as they are. The missing ones of a service
// are launched at once (a container takes the engine a tenth of a second
// to create and start), and ensure returns those it launched anew.
func (e *Engine) ensure(ctx context.Context, f fleet) ([]platform.Instance, error) {
	var launched []platform.Instance
	for _, m := range f.rev.Spec.Members() {
		l, err := e.ensureMember(ctx, f, m)
		launched = append(launched, l...)
		if err != nil {
			return launched, err
		}
	}
	return launched, nil
}

// ensureMember launches the instances of service m of the fleet that do
// not run, at once, and returns those it launched anew, by index.
func (e *Engine) ensureMember(ctx context.Context, f fleet, m spec.Member) ([]platform.Instance, error) {
	fs, err := e.observe(ctx, f)
	if err != nil {
		return nil, err
	}
	running := map[int]bool{}
	for _, in := range fs.of(m.Name).running {
		running[in.Index] = true
	}
	var specs []platform.InstanceSpec
	for i := 0; i < f.count(m.Name); i++ {
		if running[i] {
			continue
		}
		is, err := e.instanceSpec(ctx, f, m, i)
		if err != nil {
			return nil, err
		}
		specs = append(specs, is)
	}
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

// stopFleet stops every instance of a revision in a slot, service by
// service in reverse dependency order (a front end before the back end it
// calls), each with its own stop timeout.
func (e *Engine) stopFleet(ctx context.Context, f fleet) ([]string, error) {
	var ids []string
	ms := f.rev.Spec.Members()
	for i := len(ms) - 1; i >= 0; i-- {
		m := ms[i]
		stopped, err := e.stopWhere(ctx, f.rev.App, m.Workload.StopTimeout.D(), func(in platform.Instance) bool {
			return in.Fleet == f.slot && in.Revision == f.rev.Generation && in.Service == m.Name
		})
		ids = append(ids, stopped...)
		if err != nil {
			return ids, err
		}
	}
	// Anything else of the revision in the slot (a service its spec does
	// not name) goes too.
	stopped, err := e.stopWhere(ctx, f.rev.App, stopTimeout(f.rev.Spec), func(in platform.Instance) bool {
		return in.Fleet == f.slot && in.Revision == f.rev.Generation
	})
	return append(ids, stopped...), err
}

// stopTimeout is the longest stop timeout of the spec's services.
func stopTimeout(s *spec.Spec) time.Duration {
	var d time.Duration
	for _, m := range s.Members() {
		d = max(d, m.Workload.StopTimeout.D())
	}
	return d
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
	return fleet{rev: rev, slot: a.LiveSlot, instances: n, counts: serviceCounts(rev.Spec)}, true, nil
}

// maintain keeps an app without an active deployment as it should be: its
// live fleet complete (dead instances replaced, running ones adopted), the
// router serving it, and nothing else of the app running — except the
// green a rollback was told to keep.
func (e *Engine) maintain(ctx context.Context, app string) error {
	unlock := e.lockApp(app)
	defer unlock()
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
	keep := e.keptGreen(ctx, app)
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
	if err := e.routeFleetLive(ctx, live); err != nil {
		return err
	}
	_, err = e.stopWhere(ctx, app, stopTimeout(live.rev.Spec), func(in platform.Instance) bool {
		return !live.owns(in) && !keep(in)
	})
	return err
}

// routeFleetLive routes fleet f alone, as the app's live fleet (blue, by
// role), with its own settings.
func (e *Engine) routeFleetLive(ctx context.Context, f fleet) error {
	fs, err := e.observe(ctx, f)
	if err != nil {
		return err
	}
	routes, err := e.routes(ctx, f.rev.App, routePlan{front: f.rev, fleets: []fleetPlan{planFleet(f.rev, f.slot, RoleBlue, 100, fs, false)}})
	if err != nil {
		return err
	}
	return e.opts.Traffic.Route(ctx, f.rev.App, routes)
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
