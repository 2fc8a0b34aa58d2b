package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestEventsAppendListAndFilter(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	e1, err := s.AppendEvent(ctx, Event{App: "shop", DeploymentID: "d-1", Kind: "phase", Message: "Provisioning",
		Fields: map[string]any{"step": 1, "fleet": "green"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendEvent(ctx, Event{App: "blog", Kind: "phase"}); err != nil {
		t.Fatal(err)
	}
	e3, err := s.AppendEvent(ctx, Event{App: "shop", DeploymentID: "d-2", Kind: "check", Message: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendEvent(ctx, Event{App: "shop"}); err == nil {
		t.Fatal("event without kind accepted")
	}
	all, err := s.ListEvents(ctx, EventFilter{})
	if err != nil || len(all) != 3 {
		t.Fatalf("ListEvents = %v, %v", all, err)
	}
	if all[0].Fields["step"] != float64(1) || all[0].Fields["fleet"] != "green" || !all[0].Time.Equal(e1.Time) {
		t.Fatalf("round trip of event: %+v, appended %+v", all[0], e1)
	}
	for _, tc := range []struct {
		f    EventFilter
		want []int64
	}{
		{EventFilter{App: "shop"}, []int64{e1.Seq, e3.Seq}},
		{EventFilter{DeploymentID: "d-2"}, []int64{e3.Seq}},
		{EventFilter{AfterSeq: e1.Seq, App: "shop"}, []int64{e3.Seq}},
		{EventFilter{Limit: 1}, []int64{e1.Seq}},
	} {
		got, err := s.ListEvents(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []int64
		for _, e := range got {
			seqs = append(seqs, e.Seq)
		}
		if len(seqs) != len(tc.want) || (len(seqs) > 0 && seqs[0] != tc.want[0]) {
			t.Errorf("filter %+v: seqs %v, want %v", tc.f, seqs, tc.want)
		}
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM events`); err == nil {
		t.Fatal("events were deleted")
	}
}

func TestEventCommitsWithDeploymentUpdateOrNotAtAll(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	if _, err := s.CreateRevision(ctx, Revision{App: "shop", Source: "bundle:sha256:aa"}); err != nil {
		t.Fatal(err)
	}
	d, err := s.CreateDeployment(ctx, Deployment{App: "shop", ToGeneration: 1, Phase: "Pending"})
	if err != nil {
		t.Fatal(err)
	}
	stale := d
	err = s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.AppendEvent(ctx, Event{App: "shop", DeploymentID: d.ID, Kind: "phase", Message: "Provisioning"}); err != nil {
			return err
		}
		d.Phase = "Provisioning"
		d, err = tx.UpdateDeployment(ctx, d)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// A stale update rolls back the event appended before it.
	err = s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.AppendEvent(ctx, Event{App: "shop", DeploymentID: d.ID, Kind: "phase", Message: "lost"}); err != nil {
			return err
		}
		stale.Phase = "Validating"
		_, err := tx.UpdateDeployment(ctx, stale)
		return err
	})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("stale update in tx: %v, want ErrConflict", err)
	}
	evs, err := s.ListEvents(ctx, EventFilter{DeploymentID: d.ID})
	if err != nil || len(evs) != 1 || evs[0].Message != "Provisioning" {
		t.Fatalf("events = %+v, %v; want only the committed one", evs, err)
	}
}

func TestWaitEventsWakesOnCommit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := openTest(t, t.TempDir())
	first, err := s.AppendEvent(ctx, Event{App: "shop", Kind: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []Event, 1)
	waiting := s.EventsAppended() // proves the waiter below is parked on the same generation
	go func() {
		evs, err := s.WaitEvents(ctx, EventFilter{App: "shop", AfterSeq: first.Seq})
		if err != nil {
			t.Error(err)
		}
		got <- evs
	}()
	select {
	case <-waiting:
		t.Fatal("woken before anything was appended")
	default:
	}
	second, err := s.AppendEvent(ctx, Event{App: "shop", Kind: "next"})
	if err != nil {
		t.Fatal(err)
	}
	evs := <-got
	if len(evs) != 1 || evs[0].Seq != second.Seq {
		t.Fatalf("WaitEvents = %+v, want the event %d", evs, second.Seq)
	}

	// A cancelled wait returns the context's error.
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if _, err := s.WaitEvents(cctx, EventFilter{AfterSeq: second.Seq}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled WaitEvents: %v", err)
	}
}

func TestCloseReleasesWaiters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	parked := s.EventsAppended()
	done := make(chan error, 1)
	go func() {
		_, err := s.WaitEvents(ctx, EventFilter{})
		done <- err
	}()
	s.Close()
	<-parked
	if err := <-done; err == nil || ctx.Err() != nil {
		t.Fatalf("WaitEvents after Close: %v (context: %v), want a prompt error", err, ctx.Err())
	}
}
