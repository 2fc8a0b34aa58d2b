package api

import (
	"context"
	"errors"
	"strings"
	"testing"

	"bluegreen/internal/audit"
	"bluegreen/internal/auth"
	"bluegreen/internal/store"
)

// Pause, resume and maintenance through the API: the state they leave,
// what they refuse, and who the events say asked.
func TestGateRequests(t *testing.T) {
	e := newAPIEnv(t)
	ctx := context.Background()
	if err := e.srv.Store.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.CreateApp(ctx, "shop")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c := e.client(e.token(t, "ana", auth.Deployer))
	apiErr := func(err error) *Error {
		t.Helper()
		var ae *Error
		if !errors.As(err, &ae) {
			t.Fatalf("want an API error, got %v", err)
		}
		return ae
	}

	g, err := c.Pause(ctx, "shop", PauseRequest{})
	if err != nil || g.State != GatePaused || g.Was != GateServing || g.MaxWait != "30s" || g.MaxHeld != 1000 || !strings.HasPrefix(g.By, "ana from ") {
		t.Fatalf("pause: %+v %v", g, err)
	}
	app, err := c.App(ctx, "shop")
	if err != nil || app.Gate == nil || app.Gate.State != GatePaused {
		t.Fatalf("the app while paused: %+v %v", app.Gate, err)
	}
	for _, bad := range []struct {
		req  PauseRequest
		want string
	}{
		{PauseRequest{MaxWait: "2h"}, "max wait 2h0m0s is out of range 1ms..1h0m0s"},
		{PauseRequest{MaxWait: "soon"}, `max_wait: "soon" is not a positive duration`},
		{PauseRequest{MaxHeld: 200000}, "max held 200000 is out of range 1..100000"},
		{PauseRequest{MaxHeld: -1}, "max_held: -1 is negative"},
	} {
		_, err := c.Pause(ctx, "shop", bad.req)
		if ae := apiErr(err); ae.Status != 400 || !strings.Contains(ae.Message, bad.want) {
			t.Errorf("pause %+v: %d %s; want 400 %q", bad.req, ae.Status, ae.Message, bad.want)
		}
	}
	if _, err := c.MaintenanceOff(ctx, "shop"); apiErr(err).Code != CodeNothingToDo {
		t.Errorf("maintenance off while paused: %v", err)
	}
	if _, err := c.Pause(ctx, "nope", PauseRequest{}); apiErr(err).Status != 404 {
		t.Errorf("pause of an unknown app: %v", err)
	}

	g, err = c.MaintenanceOn(ctx, "shop", MaintenanceRequest{Message: "Back soon.", RetryAfter: "2m"})
	if err != nil || g.State != GateMaintenance || g.Was != GatePaused || g.Message != "Back soon." || g.RetryAfter != "2m0s" {
		t.Fatalf("maintenance on: %+v %v", g, err)
	}
	if _, err := c.MaintenanceOn(ctx, "shop", MaintenanceRequest{Message: "bell\a"}); apiErr(err).Status != 400 {
		t.Errorf("a message with a control character: %v", err)
	}
	if _, err := c.Resume(ctx, "shop"); apiErr(err).Code != CodeNothingToDo {
		t.Errorf("resume while in maintenance: %v", err)
	}
	g, err = c.MaintenanceOff(ctx, "shop")
	if err != nil || g.State != GateServing || g.Was != GateMaintenance {
		t.Fatalf("maintenance off: %+v %v", g, err)
	}
	g, err = c.Resume(ctx, "shop")
	if err != nil || g.State != GateServing || g.Was != GateServing {
		t.Fatalf("resume of an app that serves: %+v %v", g, err)
	}

	evs, err := c.Events(ctx, "shop", "", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, ev.Kind)
		if a, ok := audit.FromFields(ev.Fields); !ok || a.Token != "ana" {
			t.Errorf("event %s does not say who asked: %v", ev.Kind, ev.Fields)
		}
	}
	if got := strings.Join(kinds, " "); got != "paused maintenance_on maintenance_off" {
		t.Errorf("events: %s", got)
	}
}
