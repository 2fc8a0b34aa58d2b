package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"bluegreen/internal/artifact"
	"bluegreen/internal/audit"
	"bluegreen/internal/spec"
	"bluegreen/internal/store"
)

// ErrNothingToDo is returned by Promote and Rollback when the app is in no
// state they apply to; the message says what the app is doing instead.
var ErrNothingToDo = errors.New("nothing to do")

// RevisionInput is a new revision: a bundle already in the bundle store,
// and optionally a spec that overrides the bundle's bluegreen.yaml.
type RevisionInput struct {
	Bundle    artifact.Digest
	Spec      []byte // empty: the bundle's bluegreen.yaml
	SpecName  string // for problems in Spec ("bluegreen.yaml" when empty)
	Message   string
	CreatedBy string
}

// CreateRevision checks the spec against its bundle (hooks and command
// checks must be executable files in it), pins the params the spec names
// at their current versions, and stores the revision under the app's next
// generation. Nothing is stored when something is wrong.
func (e *Engine) CreateRevision(ctx context.Context, in RevisionInput) (store.Revision, error) {
	raw, name := in.Spec, in.SpecName
	if name == "" {
		name = spec.FileName
	}
	if len(raw) == 0 {
		b, err := e.opts.Bundles.ReadFile(in.Bundle, spec.FileName)
		if err != nil {
			return store.Revision{}, fmt.Errorf("reading %s from bundle %s: %w", spec.FileName, in.Bundle, err)
		}
		raw = b
	}
	s, err := spec.Parse(raw, name)
	if err != nil {
		return store.Revision{}, err
	}
	if err := e.checkRunAs(s); err != nil {
		return store.Revision{}, err
	}
	if err := s.CheckTLSFiles(time.Now()); err != nil {
		return store.Revision{}, err
	}
	tmp, err := os.MkdirTemp(e.opts.RevisionsDir, ".check-")
	if err != nil {
		if err := os.MkdirAll(e.opts.RevisionsDir, 0o755); err != nil {
			return store.Revision{}, err
		}
		if tmp, err = os.MkdirTemp(e.opts.RevisionsDir, ".check-"); err != nil {
			return store.Revision{}, err
		}
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "b")
	if err := e.opts.Bundles.Unpack(in.Bundle, dir); err != nil {
		return store.Revision{}, fmt.Errorf("unpacking bundle %s: %w", in.Bundle, err)
	}
	if err := s.CheckBundle(os.DirFS(dir)); err != nil {
		return store.Revision{}, err
	}
	pins, err := e.opts.Params.Pin(ctx, s.Params)
	if err != nil {
		return store.Revision{}, fmt.Errorf("app %s: %w", s.App, err)
	}
	img, err := e.pinImage(ctx, s, pins)
	if err != nil {
		return store.Revision{}, err
	}
	r, err := e.st.CreateRevision(ctx, store.Revision{
		App: s.App, Source: "bundle:" + string(in.Bundle), Spec: raw, Params: pins,
		CreatedBy: in.CreatedBy, Message: in.Message, Image: img,
	})
	if err != nil {
		return store.Revision{}, err
	}
	for _, m := range s.Members() {
		e.usesPlatform(ctx, r.App, m.Platform)
	}
	if err := e.adoptUnpacked(&revision{Revision: r, Spec: s}, dir); err != nil {
		// Not fatal: the first deployment unpacks the bundle itself.
		e.log.Warn("keeping the checked bundle as the revision's directory", "app", r.App, "revision", r.Generation, "err", err)
	}
	msg := fmt.Sprintf("revision %d from %s", r.Generation, in.Bundle)
	fields := map[string]any{"generation": r.Generation, "source": r.Source, "message": r.Message}
	switch {
	case img != nil && img.ID != "":
		msg += fmt.Sprintf(", image %s (%s)", img.Ref, shortID(img.ID))
		fields["image"], fields["image_id"] = img.Ref, img.ID
	case img != nil:
		for _, name := range slices.Sorted(maps.Keys(img.Services)) {
			msg += fmt.Sprintf(", %s: image %s (%s)", name, img.Services[name].Ref, shortID(img.Services[name].ID))
		}
	}
	if s.IsStack() {
		fields["services"] = s.StackOrder()
	}
	msg, fields = audit.Record(ctx, msg, fields)
	e.event(ctx, r.App, "", "revision.created", msg, fields)
	return r, nil
}

// CreateImageRevision makes a new revision of app that runs another image:
// the live revision's spec with docker.image set to ref, and its bundle
// (hooks and files). It is what a CI job does after pushing an image.
func (e *Engine) CreateImageRevision(ctx context.Context, app, ref, message, createdBy string) (store.Revision, error) {
	a, err := e.st.GetApp(ctx, app)
	if err != nil {
		return store.Revision{}, err
	}
	if a.LiveGeneration == 0 {
		return store.Revision{}, notFound(fmt.Sprintf("app %s has no live revision to take the spec from: deploy a bundle with its bluegreen.yaml first", app))
	}
	live, err := e.loadRevision(ctx, app, a.LiveGeneration)
	if err != nil {
		return store.Revision{}, err
	}
	d, err := bundleDigest(live)
	if err != nil {
		return store.Revision{}, err
	}
	if !e.opts.Bundles.Has(d) {
		return store.Revision{}, prunedError(app, live.Generation)
	}
	raw, err := spec.WithImage(live.Revision.Spec, spec.FileName, ref)
	if err != nil {
		return store.Revision{}, &ImageError{App: app, Err: err}
	}
	return e.CreateRevision(ctx, RevisionInput{Bundle: d, Spec: raw, SpecName: spec.FileName, Message: message, CreatedBy: createdBy})
}

// Deploy starts a deployment of revision generation of app. A second
// deployment while one is active fails with *store.ActiveDeploymentError,
// which names the deployment in progress.
func (e *Engine) Deploy(ctx context.Context, app string, generation int64) (store.Deployment, error) {
	return e.start(ctx, app, generation, KindDeploy)
}

func (e *Engine) start(ctx context.Context, app string, generation int64, kind string) (store.Deployment, error) {
	rev, err := e.loadRevision(ctx, app, generation)
	if err != nil {
		return store.Deployment{}, err
	}
	if d, err := bundleDigest(rev); err == nil && !e.opts.Bundles.Has(d) {
		return store.Deployment{}, prunedError(app, generation)
	}
	if err := e.checkRunAs(rev.Spec); err != nil {
		return store.Deployment{}, err
	}
	det := details{Kind: kind, Fast: kind == KindRollback}
	if a, ok := audit.From(ctx); ok {
		det.StartedBy = &a
	}
	raw, err := jsonDetails(det)
	if err != nil {
		return store.Deployment{}, err
	}
	var d store.Deployment
	err = e.st.Update(ctx, func(tx *store.Tx) error {
		a, err := tx.GetApp(ctx, app)
		if err != nil {
			return err
		}
		d, err = tx.CreateDeployment(ctx, store.Deployment{
			App: app, FromGeneration: a.LiveGeneration, ToGeneration: rev.Generation,
			Phase: PhasePending, Details: raw, Deadlines: nil,
		})
		if err != nil {
			return err
		}
		msg := fmt.Sprintf("deploying revision %d", rev.Generation)
		if a.LiveGeneration > 0 {
			msg += fmt.Sprintf(" over revision %d", a.LiveGeneration)
		}
		if kind == KindRollback {
			msg = fmt.Sprintf("rolling back to revision %d (blue has retired, so it is deployed again on the fast path)", rev.Generation)
		}
		msg, fields := audit.Record(ctx, msg, map[string]any{"from": a.LiveGeneration, "to": rev.Generation, "kind": kind})
		_, err = tx.AppendEvent(ctx, store.Event{App: app, DeploymentID: d.ID, Kind: "deployment.created", Message: msg, Fields: fields})
		return err
	})
	if err != nil {
		return store.Deployment{}, err
	}
	e.spawn(d)
	return d, nil
}

// request changes the active deployment's details (a promote, an abort)
// and wakes its runner. It retries on a conflict with the runner's own
// writes. what names the request in its event's fields.
func (e *Engine) request(ctx context.Context, app, what string, fn func(d store.Deployment, det *details) (string, error)) (store.Deployment, error) {
	for {
		d, err := e.st.ActiveDeployment(ctx, app)
		if err != nil {
			return store.Deployment{}, err
		}
		det, err := decodeDetails(d)
		if err != nil {
			return store.Deployment{}, err
		}
		msg, err := fn(d, &det)
		if err != nil {
			return d, err
		}
		raw, err := jsonDetails(det)
		if err != nil {
			return d, err
		}
		d.Details = raw
		var nd store.Deployment
		err = e.st.Update(ctx, func(tx *store.Tx) error {
			nd, err = tx.UpdateDeployment(ctx, d)
			if err != nil {
				return err
			}
			msg, fields := audit.Record(ctx, msg, map[string]any{"phase": d.Phase, "request": what})
			_, err = tx.AppendEvent(ctx, store.Event{App: app, DeploymentID: d.ID, Kind: "request", Message: msg, Fields: fields})
			return err
		})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return d, err
		}
		e.wake(d.ID)
		return nd, nil
	}
}

// Promote ends what the active deployment waits for: the manual approval,
// the current step's pause or checks (full: every remaining step, straight
// to 100 %), the bake, or blue's keep time while it retires.
func (e *Engine) Promote(ctx context.Context, app string, full bool) (store.Deployment, error) {
	return e.request(ctx, app, "promote", func(d store.Deployment, det *details) (string, error) {
		switch d.Phase {
		case PhaseAwaitingApproval:
			det.Approved, det.Full = true, full
			if full {
				return "promote --full: approved, and green goes to 100 % at once", nil
			}
			return "promote: approved", nil
		case PhaseShifting:
			det.Progress.Promoted = true
			det.Full = det.Full || full
			det.Stalled, det.Inconclusive = false, 0
			if full {
				return "promote --full: green goes to 100 % at once", nil
			}
			return fmt.Sprintf("promote: step %d ends now", d.Step+1), nil
		case PhaseBaking:
			det.SkipBake = true
			det.Stalled, det.Inconclusive = false, 0
			return "promote: the bake ends now and green becomes live", nil
		case PhaseRetiring:
			det.SkipKeepBlue = true
			return "promote: blue retires now", nil
		}
		return "", fmt.Errorf("deployment %s of app %s is %s: nothing waits for promote: %w", d.ID, app, d.Phase, ErrNothingToDo)
	})
}

// Abort rolls the active deployment back.
func (e *Engine) Abort(ctx context.Context, app, reason string) (store.Deployment, error) {
	if reason == "" {
		reason = "aborted"
	}
	// The deployment's reason says who aborted it; the request's event
	// says it in its own fields.
	why := reason
	if a, ok := audit.From(ctx); ok {
		why += " (by " + a.String() + ")"
	}
	d, err := e.request(ctx, app, "abort", func(d store.Deployment, det *details) (string, error) {
		if d.Phase == PhaseRollingBack {
			if det.EndNow != "" {
				return "", fmt.Errorf("deployment %s of app %s is already ending its rollback: %w", d.ID, app, ErrNothingToDo)
			}
			// A rollback that does not end (a hook or a drain that takes
			// long, a data plane that refuses it) is ended now.
			det.EndNow = why
			return "abort: the rollback ends now (" + reason + ")", nil
		}
		det.Abort = why
		return "abort: " + reason, nil
	})
	if err == nil {
		// A hook or a drain in progress need not run to its end.
		e.interrupt(d.ID)
	}
	return d, err
}

// Rollback takes the app back to an earlier revision. While blue is warm
// (the last deployment is retiring it) that is a weight flip; afterwards
// it is a new deployment of the earlier revision on the fast path: no
// approval, pauses or bake, but health is still validated. to is the
// generation to go back to; 0 means the one before the live revision.
func (e *Engine) Rollback(ctx context.Context, app string, to int64) (store.Deployment, error) {
	if d, err := e.st.ActiveDeployment(ctx, app); err == nil {
		switch {
		case d.Phase == PhaseRetiring && to != 0 && to != d.FromGeneration:
			return d, fmt.Errorf("deployment %s of app %s is retiring revision %d, which is still warm: `rollback %s` goes back to it at once; revision %d can be deployed again once the deployment has ended (`promote %s` retires blue now): %w",
				d.ID, app, d.FromGeneration, app, to, app, ErrNothingToDo)
		case d.Phase != PhaseRetiring:
			return d, fmt.Errorf("deployment %s of app %s is in progress (%s): use abort to roll it back: %w", d.ID, app, d.Phase, ErrNothingToDo)
		}
		return e.Abort(ctx, app, "rollback requested while blue was warm")
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Deployment{}, err
	}
	a, err := e.st.GetApp(ctx, app)
	if err != nil {
		return store.Deployment{}, err
	}
	if a.LiveGeneration == 0 {
		return store.Deployment{}, fmt.Errorf("app %s has no live revision to roll back from: %w", app, ErrNothingToDo)
	}
	if to == 0 {
		ds, err := e.st.ListDeployments(ctx, app, false, 0)
		if err != nil {
			return store.Deployment{}, err
		}
		for _, d := range ds {
			if d.Outcome == store.OutcomeSucceeded && d.ToGeneration == a.LiveGeneration && d.FromGeneration > 0 {
				to = d.FromGeneration
				break
			}
		}
		if to == 0 {
			return store.Deployment{}, fmt.Errorf("app %s: no earlier revision was live before revision %d: %w", app, a.LiveGeneration, ErrNothingToDo)
		}
	}
	if to == a.LiveGeneration {
		return store.Deployment{}, fmt.Errorf("app %s: revision %d is already live: %w", app, to, ErrNothingToDo)
	}
	if _, err := e.st.GetRevision(ctx, app, to); errors.Is(err, store.ErrNotFound) {
		return store.Deployment{}, notFound(fmt.Sprintf("app %s has no revision %d (`bluegreen history %s` lists its deployments)", app, to, app))
	} else if err != nil {
		return store.Deployment{}, err
	}
	return e.start(ctx, app, to, KindRollback)
}

// ErrUnknownRevision is the error of a request that names a revision the
// app does not have, or one that retention pruned.
var ErrUnknownRevision = errors.New("unknown revision")

// notFound is an error that reads as its message and is ErrUnknownRevision.
type notFound string

func (n notFound) Error() string        { return string(n) }
func (n notFound) Is(target error) bool { return target == ErrUnknownRevision }
