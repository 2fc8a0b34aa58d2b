// Package routerproc runs the router as a process of its own next to the
// server, adopts one that is already running, and talks to its admin API.
//
// The router is the data plane: it must outlive the server that drives it, so
// a crash, restart or upgrade of the server never drops a request. The server
// therefore never owns the router's lifetime; it starts one when none answers,
// adopts the one that answers otherwise, and stops it only when asked to.
package routerproc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"bluegreen/internal/router"
)

// DefaultCallTimeout bounds an admin call whose context has no deadline, so a
// router that accepts but never answers cannot hang the caller.
const DefaultCallTimeout = 10 * time.Second

// Client is a typed client of the router's admin API, over a unix socket or a
// loopback TCP address. It is safe for concurrent use.
type Client struct {
	admin string
	base  string
	token string
	hc    *http.Client
}

// NewClient returns a client of the admin API at admin, written as in the
// route file: "unix:/path/admin.sock" or a loopback "host:port". The token, when
// not empty, is sent as "Authorization: Bearer TOKEN".
func NewClient(admin, token string) *Client {
	c := &Client{admin: admin, token: token}
	tr := &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}
	if path, ok := strings.CutPrefix(admin, "unix:"); ok {
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}
		// The host is never dialled; it only fills the Host header.
		c.base = "http://router"
	} else {
		c.base = "http://" + admin
	}
	c.hc = &http.Client{Transport: tr}
	return c
}

// Addr is the admin address the client talks to, as given to NewClient.
func (c *Client) Addr() string { return c.admin }

// CloseIdle closes pooled connections, for instance after the router restarted.
func (c *Client) CloseIdle() { c.hc.CloseIdleConnections() }

// APIError is an answer of the admin API other than success: its HTTP status
// and the router's error code and message.
type APIError struct {
	Status  int
	Code    string // e.g. invalid_table, rejected, not_found, invalid_request, unauthorized
	Message string
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("router answered %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("router answered %d %s: %s", e.Status, e.Code, e.Message)
}

// Health asks whether the router answers and returns its table's generation.
func (c *Client) Health(ctx context.Context) (uint64, error) {
	var out struct {
		OK         bool   `json:"ok"`
		Generation uint64 `json:"generation"`
	}
	if err := c.do(ctx, http.MethodGet, "/healthz", nil, &out); err != nil {
		return 0, err
	}
	if !out.OK {
		return 0, errors.New("GET /healthz: router answered ok=false")
	}
	return out.Generation, nil
}

// Routes returns the running table (defaults filled in, without the admin
// token) and its generation.
func (c *Client) Routes(ctx context.Context) (router.Config, uint64, error) {
	v, err := c.RoutesView(ctx)
	if err != nil {
		return router.Config{}, 0, err
	}
	if v.Table == nil {
		return router.Config{}, 0, errors.New("GET /routes: the answer has no table")
	}
	return *v.Table, v.Generation, nil
}

// RoutesView returns the whole answer of GET /routes: the table and the health
// of every target.
func (c *Client) RoutesView(ctx context.Context) (router.RoutesView, error) {
	var v router.RoutesView
	err := c.do(ctx, http.MethodGet, "/routes", nil, &v)
	return v, err
}

// PutRoutes replaces the running table and returns the new generation. A table
// the router refuses leaves the running one in place and comes back as an
// *APIError with code invalid_table or rejected.
func (c *Client) PutRoutes(ctx context.Context, cfg router.Config) (uint64, error) {
	body, err := json.Marshal(cfg)
	if err != nil {
		return 0, fmt.Errorf("encoding the routing table: %w", err)
	}
	return c.putRoutesJSON(ctx, body)
}

// putRoutesJSON is PutRoutes of a table already encoded in JSON.
func (c *Client) putRoutesJSON(ctx context.Context, body []byte) (uint64, error) {
	var out struct {
		Generation uint64 `json:"generation"`
	}
	if err := c.do(ctx, http.MethodPut, "/routes", body, &out); err != nil {
		return 0, err
	}
	return out.Generation, nil
}

// PatchRoutes puts the patch's apps into the running table and takes out
// those it gives as nil, leaving the others and the settings as they run,
// and returns the new generation. The router checks the table they make
// whole; one it refuses leaves the running table in place and comes back
// as an *APIError with code invalid_table or rejected.
func (c *Client) PatchRoutes(ctx context.Context, p router.Patch) (uint64, error) {
	body, err := json.Marshal(p)
	if err != nil {
		return 0, fmt.Errorf("encoding the routes patch: %w", err)
	}
	return c.patchRoutesJSON(ctx, body)
}

// patchRoutesJSON is PatchRoutes of a patch already encoded in JSON.
func (c *Client) patchRoutesJSON(ctx context.Context, body []byte) (uint64, error) {
	var out struct {
		Generation uint64 `json:"generation"`
	}
	if err := c.do(ctx, http.MethodPatch, "/routes", body, &out); err != nil {
		return 0, err
	}
	return out.Generation, nil
}

// StatsOptions narrows or extends a stats snapshot: Window adds a window of that
// length (whole seconds, 1s to 5m) named by router.WindowName; App limits the
// snapshot to one app.
type StatsOptions = router.StatsQuery

// Stats returns the router's traffic snapshot. An App the table does not have
// is an *APIError with code not_found.
func (c *Client) Stats(ctx context.Context, opts StatsOptions) (router.Snapshot, error) {
	q := url.Values{}
	if opts.Window != 0 {
		q.Set("window", opts.Window.String())
	}
	if opts.App != "" {
		q.Set("app", opts.App)
	}
	path := "/stats"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var s router.Snapshot
	err := c.do(ctx, http.MethodGet, path, nil, &s)
	return s, err
}

// DrainRequest fences a fleet, or one target of it, and waits for its work.
type DrainRequest struct {
	App, Fleet string
	Target     string // empty: the whole fleet
	// Timeout is how long open work may take before it is closed. It must be
	// above zero: a zero left by mistake would cut every open request at once.
	Timeout time.Duration
}

// DrainReport says how a drain ended.
type DrainReport = router.DrainReport

// Drain fences the fleet or target and returns when its open work has ended or
// was closed at the timeout. The call lasts up to Timeout, plus DefaultCallTimeout
// when ctx has no deadline of its own.
func (c *Client) Drain(ctx context.Context, req DrainRequest) (DrainReport, error) {
	if req.Timeout <= 0 {
		return DrainReport{}, fmt.Errorf("drain %s/%s: timeout must be above zero (got %s)", req.App, req.Fleet, req.Timeout)
	}
	body, err := json.Marshal(router.DrainRequest{App: req.App, Fleet: req.Fleet, Target: req.Target, Timeout: router.Duration(req.Timeout)})
	if err != nil {
		return DrainReport{}, fmt.Errorf("encoding the drain request: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.Timeout+DefaultCallTimeout)
		defer cancel()
	}
	var rep DrainReport
	err = c.do(ctx, http.MethodPost, "/drain", body, &rep)
	return rep, err
}

// do makes one call and decodes a JSON answer into out, or the router's error
// into an *APIError.
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCallTimeout)
		defer cancel()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s on router admin %s: %w", method, path, c.admin, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %w", method, path, decodeError(resp.StatusCode, data))
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

func decodeError(status int, data []byte) *APIError {
	var body struct {
		Code    string `json:"code"`
		Message string `json:"error"`
	}
	if err := json.Unmarshal(data, &body); err == nil && (body.Code != "" || body.Message != "") {
		return &APIError{Status: status, Code: body.Code, Message: body.Message}
	}
	// Not the router's JSON (a 404 or 405 of the mux, or something else on the
	// address): keep the start of the text so the cause stays readable.
	msg := strings.TrimSpace(string(data))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &APIError{Status: status, Message: msg}
}
