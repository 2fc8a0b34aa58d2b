package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"bluegreen/internal/audit"
	"bluegreen/internal/router"
	"bluegreen/internal/store"
)

// An app's gate is what an operator sets between its users and its fleets:
// a pause (new production requests are held, while a migration or a
// database failover runs) or maintenance (they are answered with a 503
// page). The store has it, so a restarted server gives it to the router
// again, and every push of the app's routes carries it: a deployment while
// paused switches fleets as usual, and the held requests go to whichever
// fleet is live when the pause ends.

// Gater is a Traffic that can hold or answer an app's production requests.
type Gater interface {
	// SetGate makes the data plane treat every router app of app as g
	// says; nil serves them as usual.
	SetGate(ctx context.Context, app string, g *store.Gate) error
	// SetGates does so for every app: those not in gates serve as usual.
	SetGates(ctx context.Context, gates map[string]store.Gate) error
	// Held counts the production requests a pause of app holds now.
	Held(ctx context.Context, app string) (int64, error)
}

// ErrInvalidGate is a pause or maintenance asked for with values out of
// their bounds.
var ErrInvalidGate = errors.New("invalid pause or maintenance")

// ErrNoGate is a pause or maintenance asked of a data plane that cannot
// hold requests.
var ErrNoGate = errors.New("pause and maintenance need the built-in router")

// PauseOptions bound a pause; zero values take the router's defaults.
type PauseOptions struct {
	MaxWait time.Duration
	MaxHeld int
}

// MaintenanceOptions shape the maintenance page; zero values take the
// router's defaults.
type MaintenanceOptions struct {
	Message    string
	RetryAfter time.Duration
}

// Gate returns the app's gate; ok is false when it serves as usual.
func (e *Engine) Gate(ctx context.Context, app string) (store.Gate, bool, error) {
	return e.st.GetGate(ctx, app)
}

// Held counts the requests the app's pause holds now.
func (e *Engine) Held(ctx context.Context, app string) (int64, error) {
	gater, ok := e.opts.Traffic.(Gater)
	if !ok {
		return 0, fmt.Errorf("app %s: %w", app, ErrNoGate)
	}
	return gater.Held(ctx, app)
}

// Pause holds the app's new production requests until Resume. A pause in
// place is replaced (new bounds), and so is maintenance: the requests are
// then held instead of answered.
func (e *Engine) Pause(ctx context.Context, app string, o PauseOptions) (store.Gate, error) {
	g := store.Gate{App: app, Mode: store.GatePaused, MaxWait: o.MaxWait, MaxHeld: o.MaxHeld}
	if g.MaxWait == 0 {
		g.MaxWait = router.DefaultPauseMaxWait
	}
	if g.MaxHeld == 0 {
		g.MaxHeld = router.DefaultPauseMaxHeld
	}
	if g.MaxWait < time.Millisecond || g.MaxWait > router.MaxPauseWait {
		return store.Gate{}, fmt.Errorf("%w: max wait %s is out of range 1ms..%s", ErrInvalidGate, g.MaxWait, router.MaxPauseWait)
	}
	if g.MaxHeld < 1 || g.MaxHeld > router.MaxPauseHeld {
		return store.Gate{}, fmt.Errorf("%w: max held %d is out of range 1..%d", ErrInvalidGate, g.MaxHeld, router.MaxPauseHeld)
	}
	msg := fmt.Sprintf("paused: new production requests are held (at most %d, each up to %s) until resume", g.MaxHeld, g.MaxWait)
	return g, e.setGate(ctx, app, &g, "paused", msg, map[string]any{"max_wait": g.MaxWait.String(), "max_held": g.MaxHeld})
}

// Maintenance answers every production request of the app with a 503 page
// until MaintenanceOff. Requests a pause holds get the page too.
func (e *Engine) Maintenance(ctx context.Context, app string, o MaintenanceOptions) (store.Gate, error) {
	g := store.Gate{App: app, Mode: store.GateMaintenance, Message: o.Message, RetryAfter: o.RetryAfter}
	if g.RetryAfter == 0 {
		g.RetryAfter = router.DefaultMaintenanceRetryAfter
	}
	if g.RetryAfter < time.Second || g.RetryAfter > 24*time.Hour || g.RetryAfter%time.Second != 0 {
		return store.Gate{}, fmt.Errorf("%w: retry after %s must be whole seconds from 1s to 24h", ErrInvalidGate, g.RetryAfter)
	}
	if err := router.CheckMaintenanceMessage(g.Message); err != nil {
		return store.Gate{}, fmt.Errorf("%w: message: %v", ErrInvalidGate, err)
	}
	fields := map[string]any{"retry_after": g.RetryAfter.String()}
	if g.Message != "" {
		fields["message"] = g.Message
	}
	return g, e.setGate(ctx, app, &g, "maintenance_on", "maintenance on: production requests are answered 503 with the maintenance page", fields)
}

// Resume ends the app's pause: the held requests, and new ones, go to the
// fleets. It reports whether the app was paused; an app in maintenance is
// ErrNothingToDo (maintenance has its own off).
func (e *Engine) Resume(ctx context.Context, app string) (bool, error) {
	return e.clearGate(ctx, app, store.GatePaused, "resumed", "resumed: production requests go to the fleets again")
}

// MaintenanceOff ends the app's maintenance. It reports whether the app was
// in maintenance; a paused app is ErrNothingToDo (resume ends a pause).
func (e *Engine) MaintenanceOff(ctx context.Context, app string) (bool, error) {
	return e.clearGate(ctx, app, store.GateMaintenance, "maintenance_off", "maintenance off: production requests go to the fleets again")
}

// setGate records g with its event, then gives it to the router.
func (e *Engine) setGate(ctx context.Context, app string, g *store.Gate, kind, msg string, fields map[string]any) error {
	gater, ok := e.opts.Traffic.(Gater)
	if !ok {
		return fmt.Errorf("app %s: %w", app, ErrNoGate)
	}
	e.gateMu.Lock()
	defer e.gateMu.Unlock()
	if a, ok := audit.From(ctx); ok {
		g.By = a.String()
	}
	err := e.st.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.GetApp(ctx, app); err != nil {
			return err
		}
		stored, err := tx.SetGate(ctx, *g)
		if err != nil {
			return err
		}
		*g = stored
		m, f := audit.Record(ctx, msg, fields)
		_, err = tx.AppendEvent(ctx, store.Event{App: app, Kind: kind, Message: m, Fields: f})
		return err
	})
	if err != nil {
		return err
	}
	return routerTook(app, gater.SetGate(ctx, app, g))
}

// clearGate removes the app's gate of the mode given, with its event, then
// tells the router.
func (e *Engine) clearGate(ctx context.Context, app, mode, kind, msg string) (bool, error) {
	gater, ok := e.opts.Traffic.(Gater)
	if !ok {
		return false, fmt.Errorf("app %s: %w", app, ErrNoGate)
	}
	e.gateMu.Lock()
	defer e.gateMu.Unlock()
	was := false
	err := e.st.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.GetApp(ctx, app); err != nil {
			return err
		}
		g, ok, err := tx.GetGate(ctx, app)
		if err != nil || !ok {
			return err
		}
		if g.Mode != mode {
			if g.Mode == store.GateMaintenance {
				return fmt.Errorf("app %s is in maintenance, not paused; end it with maintenance off: %w", app, ErrNothingToDo)
			}
			return fmt.Errorf("app %s is paused, not in maintenance; end it with resume: %w", app, ErrNothingToDo)
		}
		if _, err := tx.ClearGate(ctx, app); err != nil {
			return err
		}
		was = true
		m, f := audit.Record(ctx, msg, map[string]any{"since": g.Since})
		_, err = tx.AppendEvent(ctx, store.Event{App: app, Kind: kind, Message: m, Fields: f})
		return err
	})
	if err != nil || !was {
		return false, err
	}
	return true, routerTook(app, gater.SetGate(ctx, app, nil))
}

// routerTook says that a gate recorded was not taken by the router yet:
// the next push of the app's routes (the engine's upkeep, or the router's
// restart) carries it.
func routerTook(app string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("app %s: recorded, but the router has not taken it yet (it will with its next table): %w", app, err)
}

// restoreGates gives the router every app's gate from the store, and
// clears those it has that the store no longer has (a change recorded
// while the router was not answering, or a crash between the two).
func (e *Engine) restoreGates(ctx context.Context) error {
	gater, ok := e.opts.Traffic.(Gater)
	if !ok {
		return nil
	}
	gates, err := e.st.ListGates(ctx)
	if err != nil {
		return err
	}
	return gater.SetGates(ctx, gates)
}
