package store

import (
	"context"
	"testing"
	"time"
)

func TestPruneEventsKeepsWhatRetentionKeeps(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	now := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	old := now.Add(-48 * time.Hour)
	var ids []string
	err := s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.CreateApp(ctx, "shop"); err != nil {
			return err
		}
		for g := int64(1); g <= 3; g++ {
			if _, err := tx.CreateRevision(ctx, Revision{App: "shop", Source: "bundle:x", Spec: []byte("app: shop"), Params: map[string]int64{}}); err != nil {
				return err
			}
		}
		for g := int64(1); g <= 3; g++ {
			d, err := tx.CreateDeployment(ctx, Deployment{App: "shop", ToGeneration: g, Phase: "Pending"})
			if err != nil {
				return err
			}
			if g < 3 {
				d.Outcome, d.Phase = OutcomeSucceeded, "Succeeded"
				if _, err := tx.UpdateDeployment(ctx, d); err != nil {
					return err
				}
			}
			ids = append(ids, d.ID)
			for _, at := range []time.Time{old, now} {
				if _, err := tx.AppendEvent(ctx, Event{App: "shop", DeploymentID: d.ID, Kind: "phase", Time: at}); err != nil {
					return err
				}
			}
		}
		for _, at := range []time.Time{old, now} {
			if _, err := tx.AppendEvent(ctx, Event{App: "shop", Kind: "revision.created", Time: at}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	// Keep revisions 2 and up, and everything of the last day.
	if err := s.Update(ctx, func(tx *Tx) error {
		var err error
		n, err = tx.PruneEvents(ctx, "shop", now.Add(-24*time.Hour), 2)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("pruned %d events, want 2 (deployment 1's old one and the old app event)", n)
	}
	evs, err := s.ListEvents(ctx, EventFilter{App: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Time.Equal(old) && (e.DeploymentID == ids[0] || e.DeploymentID == "") {
			t.Errorf("event %d (%s, %s) should have gone", e.Seq, e.DeploymentID, e.Kind)
		}
	}
	if len(evs) != 6 {
		t.Errorf("%d events left, want 6", len(evs))
	}
	// The log is append-only again.
	if _, err := s.w.ExecContext(ctx, `DELETE FROM events`); err == nil {
		t.Fatal("a delete outside pruning went through")
	}
}
