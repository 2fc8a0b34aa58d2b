package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"bluegreen/internal/testwait"
)

func TestGenerationsAreUniqueUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	const workers, each = 8, 10
	gens := make(chan int64, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				r, err := s.CreateRevision(ctx, Revision{App: "shop", Source: "bundle:sha256:aa"})
				if err != nil {
					t.Error(err)
					return
				}
				gens <- r.Generation
			}
		})
	}
	wg.Wait()
	close(gens)
	var got []int64
	for g := range gens {
		got = append(got, g)
	}
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	if len(got) != workers*each {
		t.Fatalf("got %d revisions, want %d", len(got), workers*each)
	}
	for i, g := range got {
		if g != int64(i+1) {
			t.Fatalf("generations are not 1..%d without gaps: %v", workers*each, got)
		}
	}
}

// Two Store values on one file behave like two server processes.
func TestOneActiveDeploymentUnderConcurrentAttempts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	stores := []*Store{openTest(t, dir), openTest(t, dir)}
	if _, err := stores[0].CreateRevision(ctx, Revision{App: "shop", Source: "bundle:sha256:aa"}); err != nil {
		t.Fatal(err)
	}
	const attempts = 16
	type result struct {
		d   Deployment
		err error
	}
	results := make(chan result, attempts)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range attempts {
		wg.Go(func() {
			<-start
			d, err := stores[i%2].CreateDeployment(ctx, Deployment{App: "shop", ToGeneration: 1, Phase: "Pending"})
			results <- result{d, err}
		})
	}
	close(start)
	wg.Wait()
	close(results)
	var winners []Deployment
	var losers []error
	for r := range results {
		if r.err == nil {
			winners = append(winners, r.d)
			continue
		}
		losers = append(losers, r.err)
	}
	if len(winners) != 1 {
		t.Fatalf("%d deployments created, want exactly 1 (errors: %v)", len(winners), losers)
	}
	for _, err := range losers {
		var ade *ActiveDeploymentError
		if !errors.As(err, &ade) || ade.DeploymentID != winners[0].ID {
			t.Errorf("loser error %v, want ActiveDeploymentError naming %s", err, winners[0].ID)
		}
	}
}

func TestConcurrentUpdatesOfOneDeploymentConflict(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	if _, err := s.CreateRevision(ctx, Revision{App: "shop", Source: "bundle:sha256:aa"}); err != nil {
		t.Fatal(err)
	}
	d, err := s.CreateDeployment(ctx, Deployment{App: "shop", ToGeneration: 1, Phase: "Pending"})
	if err != nil {
		t.Fatal(err)
	}
	// Every writer starts from version 1: exactly one may win.
	const writers = 8
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			w := d
			w.Step = i + 1
			_, err := s.UpdateDeployment(ctx, w)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrConflict):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d writers won, want 1", ok)
	}
	got, _ := s.GetDeployment(ctx, d.ID)
	if got.Version != 2 {
		t.Fatalf("version = %d, want 2", got.Version)
	}
}

// Updates asked for while a transaction commits go together in the next:
// each in a savepoint, so that one that fails or panics is rolled back
// alone (its panic raised in its own caller) and the others commit.
func TestUpdatesWaitingCommitTogether(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	s.committing.Lock() // a commit in progress: every update waits for the next
	const n = 30
	errs := make([]error, n)
	panics := make([]any, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			defer func() { panics[i] = recover() }()
			errs[i] = s.Update(ctx, func(tx *Tx) error {
				if _, err := tx.AppendEvent(ctx, Event{App: "a", Kind: fmt.Sprintf("e%d", i)}); err != nil {
					return err
				}
				switch i {
				case 7:
					return errors.New("refused")
				case 11:
					panic("boom")
				}
				return nil
			})
		})
	}
	testwait.For(t, 30*time.Second, "every write to wait for the commit", func() bool {
		s.queueMu.Lock()
		defer s.queueMu.Unlock()
		return len(s.queue) == n
	})
	s.committing.Unlock()
	wg.Wait()
	for i := range n {
		switch {
		case i == 7 && (errs[i] == nil || errs[i].Error() != "refused"):
			t.Errorf("update 7: err = %v, want its own error", errs[i])
		case i == 11 && panics[i] != "boom":
			t.Errorf("update 11: panic = %v, want boom in its own caller", panics[i])
		case i != 7 && i != 11 && (errs[i] != nil || panics[i] != nil):
			t.Errorf("update %d: err = %v, panic = %v", i, errs[i], panics[i])
		}
	}
	evs, err := s.ListEvents(ctx, EventFilter{App: "a"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range evs {
		got[e.Kind] = true
	}
	if len(evs) != n-2 || got["e7"] || got["e11"] {
		t.Fatalf("%d events kept (e7 %v, e11 %v), want %d without e7 and e11", len(evs), got["e7"], got["e11"], n-2)
	}
}

// An update whose context ends while its statement runs must not take the
// batch down with it: SQLite rolls back a whole transaction when a write in
// it is interrupted, the updates committed beside it included.
func TestCanceledUpdateLeavesItsBatch(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	s.committing.Lock()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range 3 {
		wg.Go(func() {
			uctx, cancel := context.WithCancel(ctx)
			defer cancel()
			errs[i] = s.Update(uctx, func(tx *Tx) error {
				if _, err := tx.AppendEvent(uctx, Event{App: "a", Kind: fmt.Sprintf("e%d", i)}); err != nil {
					return err
				}
				if i != 1 {
					return nil
				}
				// A long write, its context ended while it runs.
				go cancel()
				_, err := tx.tx.ExecContext(uctx, `INSERT INTO meta (key, value)
					SELECT 'never', x FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) SELECT x FROM c)
					WHERE x < 0`)
				if err == nil {
					err = uctx.Err()
				}
				return err
			})
		})
	}
	testwait.For(t, 30*time.Second, "every write to wait for the commit", func() bool {
		s.queueMu.Lock()
		defer s.queueMu.Unlock()
		return len(s.queue) == 3
	})
	s.committing.Unlock()
	wg.Wait()
	if errs[0] != nil || errs[2] != nil || !errors.Is(errs[1], context.Canceled) {
		t.Fatalf("errs = %v, want nil, context.Canceled, nil", errs)
	}
	evs, err := s.ListEvents(ctx, EventFilter{App: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Kind != "e0" && evs[0].Kind != "e2" || evs[1].Kind != "e0" && evs[1].Kind != "e2" {
		t.Fatalf("events %+v, want e0 and e2", evs)
	}
}
