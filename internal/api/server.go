package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"bluegreen/internal/artifact"
	"bluegreen/internal/auth"
	"bluegreen/internal/engine"
	"bluegreen/internal/metrics"
	"bluegreen/internal/params"
	"bluegreen/internal/platform"
	"bluegreen/internal/sampler"
	"bluegreen/internal/spec"
	"bluegreen/internal/store"
)

// Server answers the API.
type Server struct {
	Engine   *engine.Engine
	Store    *store.Store
	Bundles  *artifact.Store
	Platform platform.Platform
	Params   *params.Store
	Tokens   *auth.Tokens
	Logger   *slog.Logger
	// Heartbeat is how often an idle event stream sends a comment
	// (DefaultHeartbeat when zero).
	Heartbeat time.Duration
	// Stop, once closed, ends the event and log streams, so that a
	// shutdown need not wait for the clients that follow them.
	Stop <-chan struct{}
	// Sessions, when set, lets the dashboard's session cookie stand for
	// the token it logged in with.
	Sessions SessionAuth
	// Samples, when set, answers GET /api/v1/apps/{app}/metrics.
	Samples *sampler.Sampler
	// Metrics, when set, counts API requests and answers GET
	// /api/v1/metrics (the server's and the router's, for Prometheus).
	Metrics *metrics.Metrics
	// Failures limits failed authentications per remote address; share
	// it with the dashboard's login (a limiter of its own when nil).
	Failures *auth.Limiter
	// MaxUploads bounds the uploads received at once, and as many more
	// wait up to UploadWait (DefaultMaxUploads and DefaultUploadWait when
	// zero); uploads past those answer 503 busy.
	MaxUploads int
	UploadWait time.Duration
	// Certificates, when set, reports an app's HTTPS certificates in its status.
	Certificates func(ctx context.Context, app string) []CertificateStatus
	// UpgradeRouter, when set, answers POST /api/v1/router/upgrade.
	UpgradeRouter func(ctx context.Context) (RouterUpgrade, error)

	uploads *uploadSlots
	pace    uploadPace
}

// maxJSONBody bounds request bodies other than bundles.
const maxJSONBody = 1 << 20

// routes lists every route with the weakest role that may call it. The
// table is the single place where a route gets its role: Handler cannot
// register a route without one.
func (s *Server) routes() []route {
	return []route{
		{"GET /api/v1/healthz", public, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]any{"ok": true})
		}},
		{"POST /api/v1/revisions", auth.Deployer, s.createRevision},
		{"GET /api/v1/apps", auth.Viewer, s.listApps},
		{"GET /api/v1/apps/{app}", auth.Viewer, s.getApp},
		{"GET /api/v1/apps/{app}/revisions", auth.Viewer, s.listRevisions},
		{"POST /api/v1/apps/{app}/revisions", auth.Deployer, s.createImageRevision},
		{"GET /api/v1/apps/{app}/deployments", auth.Viewer, s.listDeployments},
		{"POST /api/v1/apps/{app}/deployments", auth.Deployer, s.deploy},
		{"GET /api/v1/apps/{app}/instances", auth.Viewer, s.listInstances},
		{"GET /api/v1/apps/{app}/instances/{id}/logs", auth.Viewer, s.instanceLogs},
		{"POST /api/v1/apps/{app}/promote", auth.Deployer, s.promote},
		{"POST /api/v1/apps/{app}/abort", auth.Deployer, s.abort},
		{"POST /api/v1/apps/{app}/rollback", auth.Deployer, s.rollback},
		{"POST /api/v1/apps/{app}/pause", auth.Deployer, s.pause},
		{"POST /api/v1/apps/{app}/resume", auth.Deployer, s.resume},
		{"PUT /api/v1/apps/{app}/maintenance", auth.Deployer, s.maintenanceOn},
		{"DELETE /api/v1/apps/{app}/maintenance", auth.Deployer, s.maintenanceOff},
		{"GET /api/v1/deployments/{id}", auth.Viewer, s.getDeployment},
		{"GET /api/v1/events", auth.Viewer, s.listEvents},
		{"GET /api/v1/apps/{app}/status", auth.Viewer, s.getStatus},
		{"GET /api/v1/status", auth.Viewer, s.getOverview},
		{"GET /api/v1/apps/{app}/metrics", auth.Viewer, s.getMetrics},
		// Prometheus metrics name apps, revisions and instance addresses:
		// a viewer's token, like the rest of what the API shows.
		{"GET /api/v1/metrics", auth.Viewer, s.prometheusMetrics},
		{"GET /api/v1/prometheus/targets", auth.Viewer, s.prometheusTargets},
		{"GET /api/v1/params", auth.Viewer, s.listParams},
		// A viewer reads a secure param's metadata, not its value: getParam
		// answers 403 for it.
		{"GET /api/v1/params/{name...}", auth.Viewer, s.getParam},
		{"PUT /api/v1/params/{name...}", auth.Deployer, s.putParam},
		{"DELETE /api/v1/params/{name...}", auth.Deployer, s.deleteParam},
		// History has a path of its own: a wildcard must end a pattern, and
		// "history" is a valid last segment of a param name.
		{"GET /api/v1/param-history/{name...}", auth.Viewer, s.paramHistory},
		{"POST /api/v1/tokens", auth.Admin, s.createToken},
		{"GET /api/v1/tokens", auth.Admin, s.listTokens},
		{"DELETE /api/v1/tokens/{id}", auth.Admin, s.revokeToken},
		{"POST /api/v1/router/upgrade", auth.Admin, s.upgradeRouter},
		// Anything else is a 404, to callers with a token only.
		{"/", auth.Viewer, func(w http.ResponseWriter, r *http.Request) {
			writeError(w, &Error{http.StatusNotFound, CodeNotFound, fmt.Sprintf("no such API route: %s %s", r.Method, r.URL.Path)})
		}},
	}
}

// Handler returns the API's routes, each behind the token check its role
// asks for.
func (s *Server) Handler() http.Handler {
	if s.Failures == nil {
		s.Failures = auth.NewLimiter(0, 0, nil)
	}
	s.uploads = newUploadSlots(s.MaxUploads, s.UploadWait)
	if s.pace == (uploadPace{}) {
		s.pace = defaultPace
	}
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.HandleFunc(rt.pattern, s.logged(s.guard(rt.pattern, rt.role, rt.handler)))
	}
	return mux
}

// decode reads a JSON body strictly: unknown fields and trailing data are
// refused. An empty body leaves v as it is.
func decode(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
	if err != nil {
		return &Error{http.StatusBadRequest, CodeInvalid, fmt.Sprintf("reading the request body: %v", err)}
	}
	if len(body) > maxJSONBody {
		return &Error{http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("request body over %d bytes", maxJSONBody)}
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &Error{http.StatusBadRequest, CodeInvalid, fmt.Sprintf("request body: %v", err)}
	}
	if dec.More() {
		return &Error{http.StatusBadRequest, CodeInvalid, "request body: trailing data after the JSON value"}
	}
	return nil
}

func appName(r *http.Request) (string, error) {
	app := r.PathValue("app")
	if !store.ValidAppName(app) {
		return "", &Error{http.StatusBadRequest, CodeInvalid, fmt.Sprintf("app name %q: must be 1-63 characters of a-z, 0-9 and -", app)}
	}
	return app, nil
}

// createRevision stores the bundle in the body (a .tar.gz, .tar or .zip,
// streamed to disk within the bundle store's limits and checked against
// ?digest= when given) and makes a revision of it. Its spec is read and
// parsed, within the spec's bounds, before anything is stored: a bundle
// whose spec is refused leaves nothing behind.
func (s *Server) createRevision(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	msg := q.Get("message")
	if len(msg) > maxMessage {
		writeError(w, &Error{http.StatusBadRequest, CodeInvalid, fmt.Sprintf("query parameter message: %d bytes; at most %d", len(msg), maxMessage)})
		return
	}
	if lim := s.Bundles.Limits().MaxArchiveBytes; r.ContentLength > lim {
		writeError(w, &Error{http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("the upload is %d bytes; a bundle archive may be at most %d", r.ContentLength, lim)})
		return
	}
	// Waiting, receiving and unpacking may outlast the server's deadline
	// for an answer: the answer gets its own once they are done.
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	release, err := s.uploads.acquire(r.Context())
	if r.Context().Err() != nil {
		return // the client left while it waited
	}
	if err != nil {
		retryAfter(w, err)
		writeError(w, err)
		return
	}
	defer release()
	var raw []byte
	d, err := s.Bundles.IngestChecked(newPacedBody(w, r.Body, s.pace), artifact.Digest(q.Get("digest")), func(fsys fs.FS) error {
		b, err := spec.ReadFile(fsys, spec.FileName)
		if err != nil {
			return err
		}
		if _, err := spec.Parse(b, spec.FileName); err != nil {
			return err
		}
		raw = b
		return nil
	})
	if err != nil {
		extendWrite(rc)
		writeError(w, uploadError(err))
		return
	}
	rev, err := s.Engine.CreateRevision(r.Context(), engine.RevisionInput{Bundle: d, Spec: raw, SpecName: spec.FileName, Message: msg, CreatedBy: caller(r.Context()).Name})
	extendWrite(rc)
	var se *spec.Errors
	if errors.As(err, &se) {
		err = &Error{http.StatusBadRequest, CodeInvalid, err.Error()}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, revisionOf(rev))
}

// createImageRevision makes a revision from the app's live spec with the
// image the body names, and no bundle upload: the usual step after a CI
// job pushed an image.
func (s *Server) createImageRevision(w http.ResponseWriter, r *http.Request) {
	app, err := appName(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req ImageRevisionRequest
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	switch {
	case req.Image == "":
		writeError(w, &Error{http.StatusBadRequest, CodeInvalid, "image: missing; name the image the new revision runs"})
		return
	case len(req.Image) > maxImageRef:
		writeError(w, &Error{http.StatusBadRequest, CodeInvalid, fmt.Sprintf("image: %d bytes; a reference may be at most %d", len(req.Image), maxImageRef)})
		return
	case len(req.Message) > maxMessage:
		writeError(w, &Error{http.StatusBadRequest, CodeInvalid, fmt.Sprintf("message: %d bytes; at most %d", len(req.Message), maxMessage)})
		return
	}
	rev, err := s.Engine.CreateImageRevision(r.Context(), app, req.Image, req.Message, caller(r.Context()).Name)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, revisionOf(rev))
}

// maxImageRef bounds an image reference (Docker's own limit is 255 bytes
// for the name, plus tag and digest).
const maxImageRef = 512

func (s *Server) appOf(r *http.Request, a store.App) (App, error) {
	out := App{Name: a.Name, LiveRevision: a.LiveGeneration, LiveFleet: a.LiveSlot, LiveInstances: a.LiveInstances,
		CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
	d, err := s.Store.ActiveDeployment(r.Context(), a.Name)
	switch {
	case err == nil:
		dd := deploymentOf(d)
		out.Deployment = &dd
	case !errors.Is(err, store.ErrNotFound):
		return out, err
	}
	g, ok, err := s.Store.GetGate(r.Context(), a.Name)
	if err != nil {
		return out, err
	}
	out.Gate = gateOf(g, ok)
	return out, nil
}

// listApps answers GET /api/v1/apps: two reads, whatever the number of
// apps (not one per app for its deployment).
func (s *Server) listApps(w http.ResponseWriter, r *http.Request) {
	apps, err := s.Store.ListApps(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	latest, err := s.Store.LatestDeployments(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	gates, err := s.Store.ListGates(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]App, 0, len(apps))
	for _, a := range apps {
		x := appWith(a, latest)
		g, ok := gates[a.Name]
		x.Gate = gateOf(g, ok)
		out = append(out, x)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request) {
	app, err := appName(r)
	if err != nil {
		writeError(w, err)
		return
	}
	a, err := s.Store.GetApp(r.Context(), app)
	if err != nil {
		writeError(w, err)
		return
	}
	x, err := s.appOf(r, a)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, x)
}

func (s *Server) listRevisions(w http.ResponseWriter, r *http.Request) {
	app, err := appName(r)
	if err != nil {
		writeError(w, err)
		return
	}
	revs, err := s.Store.ListRevisions(r.Context(), app, 0)
	if err != nil {
		writeError(w, err)
		return
	}
	out := []Revision{}
	for _, rev := range revs {
		out = append(out, revisionOf(rev))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request) {
	app, err := appName(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ds, err := s.Store.ListDeployments(r.Context(), app, false, 100)
	if err != nil {
		writeError(w, err)
		return
	}
	out := []Deployment{}
	for _, d := range ds {
		out = append(out, deploymentOf(d))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deploy(w http.ResponseWriter, r *http.Request) {
	app, err := appName(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req DeployRequest
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Revision <= 0 {
		writeError(w, &Error{http.StatusBadRequest, CodeInvalid, `request body: "revision" is required (a revision number of the app, from POST /api/v1/revisions)`})
		return
	}
	d, err := s.Engine.Deploy(r.Context(), app, req.Revision)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, deploymentOf(d))
}

func (s *Server) listInstances(w http.ResponseWriter, r *http.Request) {
	app, err := appName(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ins, err := s.Engine.Instances(r.Context(), app)
	if err != nil {
		writeError(w, err)
		return
	}
	out := []Instance{}
	for _, in := range ins {
		out = append(out, instanceOf(in))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) promote(w http.ResponseWriter, r *http.Request) {
	var req PromoteRequest
	s.act(w, r, &req, func(app string) (store.Deployment, error) { return s.Engine.Promote(r.Context(), app, req.Full) })
}

func (s *Server) abort(w http.ResponseWriter, r *http.Request) {
	var req AbortRequest
	s.act(w, r, &req, func(app string) (store.Deployment, error) {
		reason := "aborted"
		if req.Reason != "" {
			reason = "aborted: " + req.Reason
		}
		return s.Engine.Abort(r.Context(), app, reason)
	})
}

func (s *Server) rollback(w http.ResponseWriter, r *http.Request) {
	var req RollbackRequest
	s.act(w, r, &req, func(app string) (store.Deployment, error) { return s.Engine.Rollback(r.Context(), app, req.To) })
}

// act decodes the body into req and answers with the deployment fn acted on.
func (s *Server) act(w http.ResponseWriter, r *http.Request, req any, fn func(app string) (store.Deployment, error)) {
	app, err := appName(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := decode(r, req); err != nil {
		writeError(w, err)
		return
	}
	d, err := fn(app)
	if errors.Is(err, store.ErrNotFound) {
		err = &Error{http.StatusConflict, CodeNothingToDo, fmt.Sprintf("app %s has no deployment in progress", app)}
		if _, gerr := s.Store.GetApp(r.Context(), app); errors.Is(gerr, store.ErrNotFound) {
			err = &Error{http.StatusNotFound, CodeNotFound, fmt.Sprintf("app %s: not found", app)}
		}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, deploymentOf(d))
}

func (s *Server) getDeployment(w http.ResponseWriter, r *http.Request) {
	d, err := s.Store.GetDeployment(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, deploymentOf(d))
}

// listEvents answers ?app=&deployment=&after=SEQ&limit=N, oldest first;
// with wait=1 it blocks until there is at least one (or the client leaves).
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.EventFilter{App: q.Get("app"), DeploymentID: q.Get("deployment")}
	for name, dst := range map[string]*int64{"after": &f.AfterSeq} {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				writeError(w, &Error{http.StatusBadRequest, CodeInvalid, fmt.Sprintf("query parameter %s=%q: want a sequence number", name, v)})
				return
			}
			*dst = n
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 10000 {
			writeError(w, &Error{http.StatusBadRequest, CodeInvalid, fmt.Sprintf("query parameter limit=%q: want 1 to 10000", v)})
			return
		}
		f.Limit = n
	}
	if wantsEventStream(r) {
		s.streamEvents(w, r, f)
		return
	}
	var evs []store.Event
	var err error
	if q.Get("wait") == "1" {
		evs, err = s.Store.WaitEvents(r.Context(), f)
	} else {
		evs, err = s.Store.ListEvents(r.Context(), f)
	}
	if err != nil {
		if r.Context().Err() != nil {
			return
		}
		writeError(w, err)
		return
	}
	out := []Event{}
	for _, e := range evs {
		out = append(out, eventOf(e, callerRole(r.Context())))
	}
	// A wait may have outlasted the server's write deadline.
	extendWrite(http.NewResponseController(w))
	writeJSON(w, http.StatusOK, out)
}

// instanceLogs answers an instance's output as text: ?tail=N for the last N
// lines (all that is kept otherwise); ?follow=1 then streams what it writes.
func (s *Server) instanceLogs(w http.ResponseWriter, r *http.Request) {
	app, err := appName(r)
	if err != nil {
		writeError(w, err)
		return
	}
	id := r.PathValue("id")
	tail := 0
	if v := r.URL.Query().Get("tail"); v != "" {
		if tail, err = strconv.Atoi(v); err != nil || tail < 0 {
			writeError(w, &Error{http.StatusBadRequest, CodeInvalid, fmt.Sprintf("query parameter tail=%q: want a number of lines", v)})
			return
		}
	}
	ins, err := s.Engine.Instances(r.Context(), app)
	if err != nil {
		writeError(w, err)
		return
	}
	listed := false
	for _, in := range ins {
		listed = listed || in.ID == id
	}
	follow := r.URL.Query().Get("follow") == "1"
	var rc io.ReadCloser
	if follow && listed {
		rc, err = s.followLogs(r, id, tail)
	} else {
		// An instance that was stopped (rolled back, retired) keeps its
		// output until it is pruned: named by this app's ID pattern, it
		// can still be read.
		rc, err = s.Platform.Logs(r.Context(), id, platform.LogOptions{Tail: tail})
	}
	if !listed && !namesInstanceOf(app, id) || errors.Is(err, platform.ErrNotFound) {
		writeError(w, &Error{http.StatusNotFound, CodeNotFound, fmt.Sprintf("app %s has no instance %s", app, id)})
		if err == nil {
			rc.Close()
		}
		return
	}
	if err != nil {
		writeError(w, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if follow {
		copyFlushing(w, rc)
		return
	}
	_, _ = io.Copy(w, rc)
}

// stoppedID is how the engine names an instance: APP-GENERATION-SLOT-INDEX.
var stoppedID = regexp.MustCompile(`^[0-9]+-(blue|green)-[0-9]+$`)

// namesInstanceOf says whether id names an instance of app, running or not.
func namesInstanceOf(app, id string) bool {
	rest, ok := strings.CutPrefix(id, app+"-")
	return ok && stoppedID.MatchString(rest)
}
