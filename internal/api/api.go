// Package api is bluegreen's HTTP API (JSON under /api/v1) and its Go
// client. The server side is a thin layer over the engine and the store:
// it decodes requests strictly, calls one engine method, and maps errors
// to statuses with a machine code and a message a person can act on.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"syscall"
	"time"

	"bluegreen/internal/artifact"
	"bluegreen/internal/audit"
	"bluegreen/internal/auth"
	"bluegreen/internal/engine"
	"bluegreen/internal/platform"
	"bluegreen/internal/spec"
	"bluegreen/internal/store"
)

// Error is the body of every error answer.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"error"`
}

func (e *Error) Error() string { return e.Message }

// Error codes.
const (
	CodeInvalid          = "invalid_request"
	CodeNotFound         = "not_found"
	CodeActiveDeployment = "deployment_in_progress"
	CodeNothingToDo      = "nothing_to_do"
	CodeConflict         = "conflict"
	CodeTooLarge         = "too_large"
	CodeInternal         = "internal"
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodeLastAdmin        = "last_admin_token"
	CodeTooManyRequests  = "too_many_requests"
	CodeBusy             = "busy"
	CodeTimeout          = "timeout"
	CodeNoSpace          = "insufficient_storage"
	CodeUnavailable      = "platform_unavailable"
)

// App is an app as the API shows it.
type App struct {
	Name          string      `json:"name"`
	LiveRevision  int64       `json:"live_revision,omitempty"`
	LiveFleet     string      `json:"live_fleet,omitempty"`
	LiveInstances int         `json:"live_instances,omitempty"`
	Deployment    *Deployment `json:"deployment,omitempty"` // the active one
	CreatedAt     time.Time   `json:"created_at"`
	UpdatedAt     time.Time   `json:"updated_at"`

	// Gate is set while the app is paused or in maintenance.
	Gate *Gate `json:"gate,omitempty"`
}

// Revision is a stored revision.
type Revision struct {
	App        string           `json:"app"`
	Generation int64            `json:"generation"`
	Source     string           `json:"source"`
	Params     map[string]int64 `json:"params"`
	Message    string           `json:"message,omitempty"`
	CreatedBy  string           `json:"created_by,omitempty"` // the name of the token that uploaded it
	CreatedAt  time.Time        `json:"created_at"`
	// Image is the image the revision runs, pinned when it was created;
	// absent for a revision of processes.
	Image *Image `json:"image,omitempty"`
	// Services are a stack's services, in dependency order, and Images the
	// images its services of containers run; both absent for an app of
	// one service.
	Services []string         `json:"services,omitempty"`
	Images   map[string]Image `json:"images,omitempty"`
}

// Image is an image reference pinned to its ID (and repository digest, for
// an image pulled from a registry).
type Image struct {
	Ref    string `json:"ref"`
	ID     string `json:"id"`
	Digest string `json:"digest,omitempty"`
}

// ImageRevisionRequest makes a revision from the app's live spec with
// another image.
type ImageRevisionRequest struct {
	Image   string `json:"image"`
	Message string `json:"message,omitempty"`
}

// Deployment is a deployment with its phase and what it waits for.
type Deployment struct {
	ID           string               `json:"id"`
	App          string               `json:"app"`
	FromRevision int64                `json:"from_revision,omitempty"`
	ToRevision   int64                `json:"to_revision"`
	Phase        string               `json:"phase"`
	Step         int                  `json:"step"`
	Deadlines    map[string]time.Time `json:"deadlines,omitempty"`
	Details      json.RawMessage      `json:"details,omitempty"`
	Outcome      string               `json:"outcome,omitempty"`
	Reason       string               `json:"reason,omitempty"`
	CreatedAt    time.Time            `json:"created_at"`
	UpdatedAt    time.Time            `json:"updated_at"`
	FinishedAt   *time.Time           `json:"finished_at,omitempty"`
	// StartedBy is who asked for the deployment: the token's name and ID
	// and the address the request came from.
	StartedBy *audit.Actor `json:"started_by,omitempty"`
}

// Event is one entry of the event log.
type Event struct {
	Seq          int64          `json:"seq"`
	Time         time.Time      `json:"time"`
	App          string         `json:"app"`
	DeploymentID string         `json:"deployment_id,omitempty"`
	Kind         string         `json:"kind"`
	Message      string         `json:"message"`
	Fields       map[string]any `json:"fields,omitempty"`
}

// Instance is one running (or exited) instance of an app.
type Instance struct {
	ID       string `json:"id"`
	Revision int64  `json:"revision"`
	Fleet    string `json:"fleet"`
	// Service is the service of a stack it runs (absent for an app of
	// one service).
	Service   string    `json:"service,omitempty"`
	Address   string    `json:"address"`
	State     string    `json:"state"`
	PID       int       `json:"pid,omitempty"`
	StartedAt time.Time `json:"started_at"`
	ExitCode  *int      `json:"exit_code,omitempty"`
	// Platform runs it ("process", "docker"); Container is its container's
	// ID and Detail says what it runs, on a platform of containers.
	Platform  string `json:"platform,omitempty"`
	Container string `json:"container,omitempty"`
	Detail    string `json:"detail,omitempty"`
}

// DeployRequest starts a deployment.
type DeployRequest struct {
	Revision int64 `json:"revision"`
}

// PromoteRequest ends what a deployment waits for.
type PromoteRequest struct {
	Full bool `json:"full,omitempty"`
}

// AbortRequest rolls the active deployment back.
type AbortRequest struct {
	Reason string `json:"reason,omitempty"`
}

// RollbackRequest goes back to an earlier revision (0: the one before).
type RollbackRequest struct {
	To int64 `json:"to,omitempty"`
}

func deploymentOf(d store.Deployment) Deployment {
	out := Deployment{
		ID: d.ID, App: d.App, FromRevision: d.FromGeneration, ToRevision: d.ToGeneration,
		Phase: d.Phase, Step: d.Step, Deadlines: d.Deadlines, Details: d.Details,
		Outcome: d.Outcome, Reason: d.Reason, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
	}
	if !d.FinishedAt.IsZero() {
		t := d.FinishedAt
		out.FinishedAt = &t
	}
	var who struct {
		StartedBy *audit.Actor `json:"started_by"`
	}
	if json.Unmarshal(d.Details, &who) == nil {
		out.StartedBy = who.StartedBy
	}
	return out
}

func revisionOf(r store.Revision) Revision {
	out := Revision{App: r.App, Generation: r.Generation, Source: r.Source, Params: r.Params, Message: r.Message, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt}
	if r.Image != nil && r.Image.ID != "" {
		out.Image = &Image{Ref: r.Image.Ref, ID: r.Image.ID, Digest: r.Image.Digest}
	}
	if r.Image != nil && len(r.Image.Services) > 0 {
		out.Images = map[string]Image{}
		for name, img := range r.Image.Services {
			out.Images[name] = Image{Ref: img.Ref, ID: img.ID, Digest: img.Digest}
		}
	}
	if s, err := spec.Parse(r.Spec, spec.FileName); err == nil && s.IsStack() {
		out.Services = s.StackOrder()
	}
	return out
}

// errorOf maps an error to its answer.
func errorOf(err error) *Error {
	var ae *Error
	var active *store.ActiveDeploymentError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, new(*spec.Errors)):
		return &Error{http.StatusBadRequest, CodeInvalid, err.Error()}
	case errors.Is(err, platform.ErrUnavailable):
		return &Error{http.StatusServiceUnavailable, CodeUnavailable, err.Error()}
	case errors.As(err, new(*engine.ImageError)):
		return &Error{http.StatusBadRequest, CodeInvalid, err.Error()}
	case errors.As(err, &active):
		return &Error{http.StatusConflict, CodeActiveDeployment,
			fmt.Sprintf("app %s has a deployment in progress: %s; wait for it, or abort it", active.App, active.DeploymentID)}
	case errors.Is(err, store.ErrNotFound), errors.Is(err, engine.ErrUnknownRevision):
		return &Error{http.StatusNotFound, CodeNotFound, err.Error()}
	case errors.Is(err, auth.ErrLastAdmin):
		return &Error{http.StatusConflict, CodeLastAdmin, err.Error()}
	case errors.Is(err, engine.ErrNothingToDo):
		return &Error{http.StatusConflict, CodeNothingToDo, err.Error()}
	case errors.Is(err, store.ErrConflict):
		return &Error{http.StatusConflict, CodeConflict, err.Error()}
	case errors.Is(err, artifact.ErrLimit):
		return &Error{http.StatusRequestEntityTooLarge, CodeTooLarge, err.Error()}
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return &Error{http.StatusInsufficientStorage, CodeNoSpace, "the server's disk is full: " + err.Error()}
	}
	return &Error{http.StatusInternalServerError, CodeInternal, err.Error()}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeError answers err. The answer is noted for the request's log line
// (see logged), so that a server-side failure is never only in an answer.
func writeError(w http.ResponseWriter, err error) {
	e := errorOf(err)
	if n, ok := w.(*loggedWriter); ok {
		n.err = e
	}
	writeJSON(w, e.Status, e)
}
