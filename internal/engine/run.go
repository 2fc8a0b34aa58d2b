package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"bluegreen/internal/platform"
	"bluegreen/internal/store"
)

// errRollback ends a phase: the deployment must roll back for the reason
// it carries.
type errRollback struct{ reason string }

func (e *errRollback) Error() string { return e.reason }

func rollbackf(format string, args ...any) error {
	return &errRollback{reason: fmt.Sprintf(format, args...)}
}

// state is a deployment being worked on: the stored row, the engine's
// details decoded from it, and the revisions involved.
type state struct {
	d     store.Deployment
	det   details
	green *revision
	blue  *revision // nil for an app's first deployment
}

func decodeDetails(d store.Deployment) (details, error) {
	var det details
	if len(d.Details) > 0 {
		if err := json.Unmarshal(d.Details, &det); err != nil {
			return det, fmt.Errorf("deployment %s: decoding details: %w", d.ID, err)
		}
	}
	return det, nil
}

func (e *Engine) loadState(ctx context.Context, id string) (*state, error) {
	d, err := e.st.GetDeployment(ctx, id)
	if err != nil {
		return nil, err
	}
	det, err := decodeDetails(d)
	if err != nil {
		return nil, err
	}
	s := &state{d: d, det: det}
	if s.green, err = e.loadRevision(ctx, d.App, d.ToGeneration); err != nil {
		return nil, err
	}
	if d.FromGeneration > 0 {
		if s.blue, err = e.loadRevision(ctx, d.App, d.FromGeneration); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// greenFleet and blueFleet are the deployment's two fleets.
func (s *state) greenFleet() fleet {
	return fleet{rev: s.green, slot: s.det.Slot, instances: s.det.Instances, counts: s.det.Services}
}

func (s *state) blueFleet() (fleet, bool) {
	if s.blue == nil {
		return fleet{}, false
	}
	return fleet{rev: s.blue, slot: s.det.BlueSlot, instances: s.det.BlueInstances, counts: s.det.BlueServices}, true
}

// change is one persisted step of a deployment: the new phase (or the same),
// with the event that reports it.
type change struct {
	phase   string
	outcome string
	reason  string
	kind    string // event kind
	message string
	fields  map[string]any
	// app, when set, is written in the same transaction (the live revision).
	app func(ctx context.Context, tx *store.Tx) error
}

// save writes s.det and the change in one transaction, so that the event
// and the state it reports commit together. A conflict (a request such as
// promote changed the deployment meanwhile) returns store.ErrConflict; the
// runner then reloads and goes again.
func (e *Engine) save(ctx context.Context, s *state, c change) error {
	prev, since := s.d, s.det.PhaseSince
	if c.phase != "" && c.phase != s.d.Phase {
		s.det.PhaseSince = e.now()
	}
	raw, err := json.Marshal(s.det)
	if err != nil {
		return fmt.Errorf("deployment %s: encoding details: %w", s.d.ID, err)
	}
	d := s.d
	d.Details = raw
	if c.phase != "" {
		d.Phase = c.phase
	}
	d.Step = s.det.Progress.Step
	if c.outcome != "" {
		d.Outcome = c.outcome
	}
	if c.reason != "" {
		d.Reason = c.reason
	}
	err = e.st.Update(ctx, func(tx *store.Tx) error {
		if c.app != nil {
			if err := c.app(ctx, tx); err != nil {
				return err
			}
		}
		nd, err := tx.UpdateDeployment(ctx, d)
		if err != nil {
			return err
		}
		if c.kind != "" {
			fields := c.fields
			if fields == nil {
				fields = map[string]any{}
			}
			fields["phase"] = nd.Phase
			if _, err := tx.AppendEvent(ctx, store.Event{App: d.App, DeploymentID: d.ID, Kind: c.kind, Message: c.message, Fields: fields}); err != nil {
				return err
			}
		}
		d = nd
		return nil
	})
	if err != nil {
		s.det.PhaseSince = since
		return err
	}
	if d.Phase != s.d.Phase {
		e.log.Info("deployment phase", "app", d.App, "deployment", d.ID, "from", s.d.Phase, "to", d.Phase, "reason", d.Reason)
	}
	s.d = d
	e.countChange(prev, d, since)
	return nil
}

// event appends an event outside a transition (hook output, check results,
// replaced instances). A failure to record it is logged, not fatal.
func (e *Engine) event(ctx context.Context, app, deployment, kind, message string, fields map[string]any) {
	if _, err := e.st.AppendEvent(ctx, store.Event{App: app, DeploymentID: deployment, Kind: kind, Message: message, Fields: fields}); err != nil && ctx.Err() == nil {
		e.log.Error("recording event", "app", app, "kind", kind, "err", err)
	}
}

// run carries one deployment to its end. Each pass reloads the deployment,
// does what its phase asks (idempotently) and says when to look again.
func (e *Engine) run(ctx context.Context, id string, r *runner) {
	backoff := time.Second
	for ctx.Err() == nil {
		s, err := e.loadState(ctx, id)
		if err != nil {
			e.log.Error("loading deployment", "deployment", id, "err", err)
			if !e.sleep(ctx, r, backoff) {
				return
			}
			continue
		}
		if !s.d.Active() {
			return
		}
		sctx, cancel := context.WithCancelCause(ctx)
		e.mu.Lock()
		r.interrupt = cancel
		e.mu.Unlock()
		wait, err := e.step(sctx, s)
		e.mu.Lock()
		r.interrupt = nil
		e.mu.Unlock()
		interrupted := errors.Is(context.Cause(sctx), errInterrupted)
		cancel(nil)
		switch {
		case err == nil:
			backoff = time.Second
		case errors.Is(err, store.ErrConflict):
			continue
		case ctx.Err() != nil:
			return
		case interrupted:
			continue // an abort arrived: the next pass acts on it
		default:
			ended, terr := e.trouble(ctx, s, err)
			if terr != nil {
				e.log.Error("recording a failing step", "app", s.d.App, "deployment", id, "err", terr)
			}
			if ended {
				backoff = time.Second
				continue
			}
			e.log.Error("deployment step failed; trying again", "app", s.d.App, "deployment", id, "phase", s.d.Phase, "err", err)
			e.event(ctx, s.d.App, id, "error", fmt.Sprintf("%s: %v (trying again in %s)", s.d.Phase, err, backoff), map[string]any{"phase": s.d.Phase})
			wait = backoff
			backoff = min(backoff*2, 30*time.Second)
		}
		if err == nil && !s.det.TroubleSince.IsZero() && s.d.Active() {
			s.det.TroubleSince = time.Time{}
			if err := e.save(ctx, s, change{}); err != nil && !errors.Is(err, store.ErrConflict) {
				e.log.Error("recording a step that passed", "app", s.d.App, "deployment", id, "err", err)
			}
		}
		if wait > 0 && !e.sleep(ctx, r, wait) {
			return
		}
	}
}

// trouble deals with a step that failed with an error that may pass (the
// router restarting, a busy disk): it is tried again, but never past the
// progress deadline counted from the first failure in a row, which is
// stored. Then the deployment rolls back, or a rollback ends as Failed.
// ended says that the deployment moved on.
func (e *Engine) trouble(ctx context.Context, s *state, err error) (ended bool, _ error) {
	// From the stored state: what the failed step changed in memory is
	// not to be written.
	fresh, lerr := e.loadState(ctx, s.d.ID)
	if lerr != nil {
		return false, lerr
	}
	*s = *fresh
	now := e.now()
	if s.det.TroubleSince.IsZero() {
		s.det.TroubleSince = now
		return false, e.save(ctx, s, change{})
	}
	limit := s.green.Spec.Strategy.ProgressDeadline.D()
	if now.Sub(s.det.TroubleSince) < limit {
		return false, nil
	}
	reason := fmt.Sprintf("%s kept failing for %s (progress_deadline): %v", s.d.Phase, limit, err)
	s.det.TroubleSince = time.Time{}
	if s.d.Phase == PhaseRollingBack {
		s.d.Deadlines = map[string]time.Time{}
		return true, e.save(ctx, s, change{phase: PhaseFailed, outcome: store.OutcomeFailed,
			reason: fmt.Sprintf("%s; the rollback could not complete: %s", s.d.Reason, reason),
			kind:   "phase", message: "rollback failed: " + reason})
	}
	return true, e.beginRollback(ctx, s, reason)
}

// sleep waits for d, a wake-up or the end of ctx (false then).
func (e *Engine) sleep(ctx context.Context, r *runner, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-r.wake:
	case <-t.C:
	}
	return true
}

// step does the work of the deployment's phase and returns how long to
// wait before the next pass (0: go on at once).
func (e *Engine) step(ctx context.Context, s *state) (time.Duration, error) {
	unlock := e.lockApp(s.d.App)
	defer unlock()
	if s.det.Abort != "" && s.d.Phase != PhaseRollingBack {
		return 0, e.beginRollback(ctx, s, s.det.Abort)
	}
	if s.det.EndNow != "" && s.d.Phase == PhaseRollingBack {
		return 0, e.endRollbackNow(ctx, s)
	}
	var wait time.Duration
	var err error
	switch s.d.Phase {
	case PhasePending:
		err = e.pending(ctx, s)
	case PhaseProvisioning:
		wait, err = e.provisioning(ctx, s)
	case PhaseValidating:
		wait, err = e.validating(ctx, s)
	case PhaseTestTraffic:
		err = e.testTraffic(ctx, s)
	case PhaseAwaitingApproval:
		wait, err = e.awaitingApproval(ctx, s)
	case PhaseShifting:
		wait, err = e.shifting(ctx, s)
	case PhaseBaking:
		wait, err = e.baking(ctx, s)
	case PhaseRetiring:
		wait, err = e.retiring(ctx, s)
	case PhaseRollingBack:
		return e.rollingBack(ctx, s)
	default:
		return 0, fmt.Errorf("deployment %s: unknown phase %q", s.d.ID, s.d.Phase)
	}
	var rb *errRollback
	if errors.As(err, &rb) {
		return 0, e.beginRollback(ctx, s, rb.reason)
	}
	var pe *PermanentError
	if errors.As(err, &pe) {
		return 0, e.beginRollback(ctx, s, pe.Error())
	}
	if errors.Is(err, platform.ErrImage) {
		return 0, e.beginRollback(ctx, s, err.Error())
	}
	if err == nil && s.d.Phase != PhaseRollingBack {
		if exp, ok := s.d.Deadlines[deadlineProgress]; ok && !e.now().Before(exp) && e.progressCounts(s) {
			return 0, e.beginRollback(ctx, s, fmt.Sprintf("progress deadline: %s did not move on within %s", s.d.Phase, s.green.Spec.Strategy.ProgressDeadline))
		}
	}
	return wait, err
}

// progressCounts says whether the progress deadline applies where the
// deployment stands: not while it waits for approval, a pause or bake, or
// for blue's keep time.
func (e *Engine) progressCounts(s *state) bool {
	switch s.d.Phase {
	case PhaseAwaitingApproval, PhaseBaking, PhaseRetiring:
		return false
	case PhaseShifting:
		// Waiting for checks counts; waiting for a person does not.
		return e.stalledPlan(s).Waiting == WaitChecks
	}
	return true
}

// moveOn starts a new phase with a fresh progress deadline.
func (e *Engine) moveOn(ctx context.Context, s *state, phase, message string, fields map[string]any, deadlines map[string]time.Time) error {
	now := e.now()
	dl := map[string]time.Time{deadlineProgress: now.Add(s.green.Spec.Strategy.ProgressDeadline.D())}
	for k, v := range deadlines {
		dl[k] = v
	}
	s.d.Deadlines = dl
	return e.save(ctx, s, change{phase: phase, kind: "phase", message: message, fields: fields})
}

func jsonDetails(det details) ([]byte, error) {
	raw, err := json.Marshal(det)
	if err != nil {
		return nil, fmt.Errorf("encoding deployment details: %w", err)
	}
	return raw, nil
}
