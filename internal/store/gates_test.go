package store

import (
	"context"
	"testing"
	"time"
)

func TestGates(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	err := s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.CreateApp(ctx, "shop"); err != nil {
			return err
		}
		_, err := tx.SetGate(ctx, Gate{App: "shop", Mode: GatePaused, MaxWait: 30 * time.Second, MaxHeld: 1000, By: "ci from 127.0.0.1"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx *Tx) error {
		_, err := tx.SetGate(ctx, Gate{App: "nope", Mode: GatePaused})
		return err
	})
	if err == nil {
		t.Fatal("a gate for an app that does not exist was recorded")
	}
	err = s.Update(ctx, func(tx *Tx) error {
		_, err := tx.SetGate(ctx, Gate{App: "shop", Mode: "closed"})
		return err
	})
	if err == nil {
		t.Fatal("mode closed was recorded")
	}
	// It survives a reopen: the state a restarted server gives the router.
	s.Close()
	s = openTest(t, dir)
	g, ok, err := s.GetGate(ctx, "shop")
	if err != nil || !ok || g.Mode != GatePaused || g.MaxWait != 30*time.Second || g.MaxHeld != 1000 || g.By != "ci from 127.0.0.1" || g.Since.IsZero() {
		t.Fatalf("gate after reopen: %+v %v %v", g, ok, err)
	}
	err = s.Update(ctx, func(tx *Tx) error {
		_, err := tx.SetGate(ctx, Gate{App: "shop", Mode: GateMaintenance, Message: "back soon", RetryAfter: time.Minute})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.ListGates(ctx)
	if err != nil || len(all) != 1 || all["shop"].Mode != GateMaintenance || all["shop"].Message != "back soon" || all["shop"].MaxHeld != 0 {
		t.Fatalf("gates: %+v %v", all, err)
	}
	var was, again bool
	err = s.Update(ctx, func(tx *Tx) (err error) {
		if was, err = tx.ClearGate(ctx, "shop"); err != nil {
			return err
		}
		again, err = tx.ClearGate(ctx, "shop")
		return err
	})
	if err != nil || !was || again {
		t.Fatalf("clear: %v %v %v", was, again, err)
	}
	if _, ok, err := s.GetGate(ctx, "shop"); ok || err != nil {
		t.Fatalf("gate after clear: %v %v", ok, err)
	}
}
