package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"bluegreen/internal/artifact"
	"bluegreen/internal/platform"
	"bluegreen/internal/spec"
	"bluegreen/internal/store"
)

// Retention says what the server keeps of the revisions it no longer runs:
// each app's last Revisions revisions, and every revision younger than For,
// with their bundles, unpacked files, instance output and events. What a
// running fleet or an active deployment uses is always kept.
type Retention struct {
	Revisions int
	For       time.Duration
}

// DefaultRetention keeps ten revisions of each app, and a month of any.
var DefaultRetention = Retention{Revisions: 10, For: 30 * 24 * time.Hour}

// PruneReport says what Prune removed.
type PruneReport struct {
	// Revisions are the pruned revisions, as "app/generation".
	Revisions []string
	Bundles   int
	Events    int64
}

// logRemover is a platform that keeps the output of stopped instances
// until asked to remove it.
type logRemover interface {
	RemoveLogs(id string) error
}

// Prune removes what the retention no longer keeps.
func (e *Engine) Prune(ctx context.Context, r Retention) (PruneReport, error) {
	var rep PruneReport
	if r.Revisions < 1 {
		return rep, errors.New("retention: at least one revision of each app is kept")
	}
	apps, err := e.st.ListApps(ctx)
	if err != nil {
		return rep, err
	}
	cutoff := e.now().Add(-r.For)
	keptBundles := map[artifact.Digest]bool{}
	var dropBundles []artifact.Digest
	var errs []error
	for _, a := range apps {
		kept, dropped, err := e.pruneApp(ctx, a.Name, r, cutoff, &rep)
		if err != nil {
			errs = append(errs, fmt.Errorf("app %s: %w", a.Name, err))
		}
		for _, d := range kept {
			keptBundles[d] = true
		}
		dropBundles = append(dropBundles, dropped...)
	}
	// A bundle two revisions share goes only when neither is kept.
	for _, d := range dropBundles {
		if keptBundles[d] || !e.opts.Bundles.Has(d) {
			continue
		}
		if err := e.opts.Bundles.Remove(d); err != nil {
			errs = append(errs, err)
			continue
		}
		keptBundles[d] = true // counted once
		rep.Bundles++
	}
	if len(rep.Revisions) > 0 || rep.Events > 0 {
		e.log.Info("retention pruned", "revisions", rep.Revisions, "bundles", rep.Bundles, "events", rep.Events)
	}
	return rep, errors.Join(errs...)
}

// pruneApp prunes one app's revisions, under the app's lock so that no
// deployment starts on a revision being pruned. It returns the bundles of
// the revisions it kept and of those it pruned.
func (e *Engine) pruneApp(ctx context.Context, app string, r Retention, cutoff time.Time, rep *PruneReport) (kept, dropped []artifact.Digest, err error) {
	unlock := e.lockApp(app)
	defer unlock()
	a, err := e.st.GetApp(ctx, app)
	if err != nil {
		return nil, nil, err
	}
	revs, err := e.st.ListRevisions(ctx, app, 0)
	if err != nil {
		return nil, nil, err
	}
	slices.SortFunc(revs, func(x, y store.Revision) int { return int(y.Generation - x.Generation) })
	used := map[int64]bool{a.LiveGeneration: true}
	if d, err := e.st.ActiveDeployment(ctx, app); err == nil {
		used[d.FromGeneration], used[d.ToGeneration] = true, true
	}
	ins, err := e.list(ctx, app)
	if err != nil {
		return nil, nil, err
	}
	for _, in := range ins {
		used[in.Revision] = true // running, or exited and not yet stopped
	}
	minKept := int64(0)
	for i, rev := range revs {
		d, _ := bundleDigest(&revision{Revision: rev})
		keep := i < r.Revisions || used[rev.Generation] || !rev.CreatedAt.Before(cutoff)
		if keep {
			minKept = rev.Generation
			kept = append(kept, d)
			continue
		}
		if !e.pruned(rev) {
			if err := e.pruneRevision(app, rev.Generation, stackServices(rev.Spec)); err != nil {
				return kept, dropped, err
			}
			rep.Revisions = append(rep.Revisions, app+"/"+strconv.FormatInt(rev.Generation, 10))
		}
		if d != "" {
			dropped = append(dropped, d)
		}
	}
	if minKept == 0 {
		return kept, dropped, nil
	}
	err = e.st.Update(ctx, func(tx *store.Tx) error {
		n, err := tx.PruneEvents(ctx, app, cutoff, minKept)
		rep.Events += n
		return err
	})
	return kept, dropped, err
}

// pruned says whether a revision's files are gone already.
func (e *Engine) pruned(rev store.Revision) bool {
	d, err := bundleDigest(&revision{Revision: rev})
	if err != nil || e.opts.Bundles.Has(d) {
		return false
	}
	_, err = os.Stat(e.revisionDir(rev.App, rev.Generation) + ".unpacked")
	return errors.Is(err, os.ErrNotExist)
}

// pruneRevision removes a revision's unpacked files and its instances'
// output. Its row stays in the store, so history still names it.
func (e *Engine) pruneRevision(app string, generation int64, services []string) error {
	dir := e.revisionDir(app, generation)
	// The marker goes first: a crash half-way leaves a revision that is
	// unpacked afresh, never one that looks whole and is not.
	if err := os.Remove(dir + ".unpacked"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	var err error
	platform.Each(e.plat, func(lr logRemover) {
		for _, slot := range []string{SlotBlue, SlotGreen} {
			for _, svc := range services {
				for i := range maxInstancesPruned {
					if err != nil {
						return
					}
					if rerr := lr.RemoveLogs(ServiceInstanceID(app, generation, slot, svc, i)); rerr != nil && !errors.Is(rerr, platform.ErrNotFound) {
						err = rerr
					}
				}
			}
		}
	})
	return err
}

// maxInstancesPruned bounds the instance indexes whose output is looked for.
const maxInstancesPruned = 64

// prunedError says that a revision asked for was pruned.
func prunedError(app string, generation int64) error {
	return notFound(fmt.Sprintf("revision %d of app %s was pruned by the server's retention (its bundle is gone): deploy its bundle again", generation, app))
}

// stackServices names the services of a revision's spec: "" alone for an
// app of one service (or a spec that does not parse).
func stackServices(raw []byte) []string {
	s, err := spec.Parse(raw, spec.FileName)
	if err != nil || !s.IsStack() {
		return []string{""}
	}
	return s.StackOrder()
}
