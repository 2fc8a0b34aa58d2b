package store

import (
	"context"
	"fmt"
	"time"
)

// PruneEvents removes app's events from before the cutoff that belong to
// no deployment, or to an ended deployment of a revision older than
// minGeneration: what retention no longer keeps. Events of the kept
// revisions' deployments and of active deployments stay, whatever their
// age. It returns how many were removed.
//
// The log is append-only: a trigger refuses every delete. Pruning lifts it
// for its own statement only, inside one transaction, so nothing else can
// delete an event.
func (tx *Tx) PruneEvents(ctx context.Context, app string, before time.Time, minGeneration int64) (int64, error) {
	if _, err := tx.tx.ExecContext(ctx, `DROP TRIGGER events_no_delete`); err != nil {
		return 0, fmt.Errorf("pruning the events of app %s: %w", app, err)
	}
	res, err := tx.tx.ExecContext(ctx, `
		DELETE FROM events
		WHERE app = ? AND time < ? AND (
			deployment_id = '' OR deployment_id IN (
				SELECT id FROM deployments WHERE app = ? AND outcome != '' AND to_generation < ?))`,
		app, nanos(before), app, minGeneration)
	if err != nil {
		return 0, fmt.Errorf("pruning the events of app %s: %w", app, err)
	}
	if _, err := tx.tx.ExecContext(ctx, `
		CREATE TRIGGER events_no_delete BEFORE DELETE ON events
		BEGIN
			SELECT RAISE(ABORT, 'events are append-only');
		END`); err != nil {
		return 0, fmt.Errorf("pruning the events of app %s: %w", app, err)
	}
	return res.RowsAffected()
}
