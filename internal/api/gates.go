package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"bluegreen/internal/engine"
	"bluegreen/internal/store"
)

// Gate states of an app, as Gate.State says them.
const (
	GateServing     = "serving"
	GatePaused      = store.GatePaused
	GateMaintenance = store.GateMaintenance
)

// Gate is what stands between an app's users and its fleets: nothing
// ("serving"), a pause that holds new production requests, or maintenance
// that answers them with a 503 page.
type Gate struct {
	App   string `json:"app"`
	State string `json:"state"` // serving, paused or maintenance
	// MaxWait and MaxHeld bound a pause; Held is how many requests it
	// holds now (in an app's status only).
	MaxWait string `json:"max_wait,omitempty"`
	MaxHeld int    `json:"max_held,omitempty"`
	Held    *int64 `json:"held,omitempty"`
	// Message and RetryAfter are the maintenance page's ("" message: the
	// router's default text).
	Message    string `json:"message,omitempty"`
	RetryAfter string `json:"retry_after,omitempty"`
	// By is who set it, Since when.
	By    string     `json:"by,omitempty"`
	Since *time.Time `json:"since,omitempty"`
}

// GateChange answers a pause, resume or maintenance request: the state
// now, and the one before ("serving", "paused" or "maintenance").
type GateChange struct {
	Gate
	Was string `json:"was"`
}

// PauseRequest is the body of POST /api/v1/apps/{app}/pause. Zero values
// take the defaults (30s, 1000).
type PauseRequest struct {
	MaxWait string `json:"max_wait,omitempty"`
	MaxHeld int    `json:"max_held,omitempty"`
}

// MaintenanceRequest is the body of PUT /api/v1/apps/{app}/maintenance.
type MaintenanceRequest struct {
	Message    string `json:"message,omitempty"`
	RetryAfter string `json:"retry_after,omitempty"`
}

// gateOf is g as the API shows it; nil for an app that serves as usual.
func gateOf(g store.Gate, ok bool) *Gate {
	if !ok {
		return nil
	}
	since := g.Since
	out := &Gate{App: g.App, State: g.Mode, By: g.By, Since: &since}
	if g.Mode == store.GatePaused {
		out.MaxWait, out.MaxHeld = g.MaxWait.String(), g.MaxHeld
	} else {
		out.Message, out.RetryAfter = g.Message, g.RetryAfter.String()
	}
	return out
}

// stateOf is the state a gate stands for.
func stateOf(g *Gate) string {
	if g == nil {
		return GateServing
	}
	return g.State
}

// gateAction runs fn on the app named by the request and answers its gate
// after, with the state before.
func (s *Server) gateAction(w http.ResponseWriter, r *http.Request, req any, fn func(ctx context.Context, app string) error) {
	app, err := appName(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if req != nil {
		if err := decode(r, req); err != nil {
			writeError(w, err)
			return
		}
	}
	ctx := r.Context()
	if _, err := s.Store.GetApp(ctx, app); err != nil {
		writeError(w, err)
		return
	}
	before, ok, err := s.Engine.Gate(ctx, app)
	if err != nil {
		writeError(w, err)
		return
	}
	was := stateOf(gateOf(before, ok))
	if err := fn(ctx, app); err != nil {
		writeError(w, gateError(err))
		return
	}
	after, ok, err := s.Engine.Gate(ctx, app)
	if err != nil {
		writeError(w, err)
		return
	}
	out := GateChange{Gate: Gate{App: app, State: GateServing}, Was: was}
	if g := gateOf(after, ok); g != nil {
		out.Gate = *g
	}
	writeJSON(w, http.StatusOK, out)
}

// gateError maps the engine's gate errors to answers.
func gateError(err error) error {
	switch {
	case errors.Is(err, engine.ErrInvalidGate):
		return &Error{http.StatusBadRequest, CodeInvalid, err.Error()}
	case errors.Is(err, engine.ErrNoGate):
		return &Error{http.StatusConflict, CodeConflict, err.Error()}
	}
	return err
}

// parseGateDuration reads a duration field of a gate request.
func parseGateDuration(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, &Error{http.StatusBadRequest, CodeInvalid, fmt.Sprintf("%s: %q is not a positive duration (use a form such as 500ms, 30s, 2m)", field, v)}
	}
	return d, nil
}

func (s *Server) pause(w http.ResponseWriter, r *http.Request) {
	var req PauseRequest
	s.gateAction(w, r, &req, func(ctx context.Context, app string) error {
		wait, err := parseGateDuration("max_wait", req.MaxWait)
		if err != nil {
			return err
		}
		if req.MaxHeld < 0 {
			return &Error{http.StatusBadRequest, CodeInvalid, fmt.Sprintf("max_held: %d is negative", req.MaxHeld)}
		}
		_, err = s.Engine.Pause(ctx, app, engine.PauseOptions{MaxWait: wait, MaxHeld: req.MaxHeld})
		return err
	})
}

func (s *Server) resume(w http.ResponseWriter, r *http.Request) {
	s.gateAction(w, r, nil, func(ctx context.Context, app string) error {
		_, err := s.Engine.Resume(ctx, app)
		return err
	})
}

func (s *Server) maintenanceOn(w http.ResponseWriter, r *http.Request) {
	var req MaintenanceRequest
	s.gateAction(w, r, &req, func(ctx context.Context, app string) error {
		retry, err := parseGateDuration("retry_after", req.RetryAfter)
		if err != nil {
			return err
		}
		_, err = s.Engine.Maintenance(ctx, app, engine.MaintenanceOptions{Message: req.Message, RetryAfter: retry})
		return err
	})
}

func (s *Server) maintenanceOff(w http.ResponseWriter, r *http.Request) {
	s.gateAction(w, r, nil, func(ctx context.Context, app string) error {
		_, err := s.Engine.MaintenanceOff(ctx, app)
		return err
	})
}

// Pause holds the app's new production requests until Resume.
func (c *Client) Pause(ctx context.Context, app string, req PauseRequest) (GateChange, error) {
	var out GateChange
	err := c.doJSON(ctx, http.MethodPost, "/api/v1/apps/"+url.PathEscape(app)+"/pause", req, &out)
	return out, err
}

// Resume ends the app's pause.
func (c *Client) Resume(ctx context.Context, app string) (GateChange, error) {
	var out GateChange
	err := c.doJSON(ctx, http.MethodPost, "/api/v1/apps/"+url.PathEscape(app)+"/resume", nil, &out)
	return out, err
}

// MaintenanceOn answers the app's production requests with a 503 page.
func (c *Client) MaintenanceOn(ctx context.Context, app string, req MaintenanceRequest) (GateChange, error) {
	var out GateChange
	err := c.doJSON(ctx, http.MethodPut, "/api/v1/apps/"+url.PathEscape(app)+"/maintenance", req, &out)
	return out, err
}

// MaintenanceOff ends the app's maintenance.
func (c *Client) MaintenanceOff(ctx context.Context, app string) (GateChange, error) {
	var out GateChange
	err := c.doJSON(ctx, http.MethodDelete, "/api/v1/apps/"+url.PathEscape(app)+"/maintenance", nil, &out)
	return out, err
}
