package router

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

// An app's gate stands between its production listener and its fleets. It
// is open unless the table pauses the app (new requests are held until the
// pause ends, up to a bound) or puts it in maintenance (every request is
// answered with a 503 page). The test listener is never gated: smoke tests
// and people checking green keep working while users wait.
//
// Gated requests are served by the goroutine path only: the event loop
// hands a connection over as soon as it sees a request for a gated app, so
// it needs no more than a nil check per request.

// PauseConfig holds an app's new production requests while it is set:
// requests in flight finish, new ones wait until a table without the pause
// is applied, and are then routed by that table.
type PauseConfig struct {
	// MaxWait bounds how long one request is held; it is then answered
	// 503 with Retry-After. Default 30s.
	MaxWait Duration `json:"max_wait,omitempty" yaml:"max_wait"`
	// MaxHeld bounds how many requests are held at once; those beyond it
	// are answered 503 at once. Default 1000.
	MaxHeld int `json:"max_held,omitempty" yaml:"max_held"`
}

// MaintenanceConfig answers every production request of an app with a 503
// page while it is set.
type MaintenanceConfig struct {
	// Message is shown to users on the page; a default says the service is
	// down for maintenance.
	Message string `json:"message,omitempty" yaml:"message"`
	// RetryAfter is sent as the Retry-After header. Default 60s.
	RetryAfter Duration `json:"retry_after,omitempty" yaml:"retry_after"`
}

// Defaults and bounds of pause and maintenance.
const (
	DefaultPauseMaxWait          = 30 * time.Second
	DefaultPauseMaxHeld          = 1000
	DefaultMaintenanceRetryAfter = 60 * time.Second
	DefaultMaintenanceMessage    = "This service is down for maintenance. Please try again in a few minutes."
	MaxPauseWait                 = time.Hour
	MaxPauseHeld                 = 100000
	MaxMaintenanceMessage        = 1024
)

// checkGate fills in the defaults of an app's pause or maintenance and
// checks them.
func checkGate(p *problems, at string, a *AppConfig) {
	if a.Pause != nil && a.Maintenance != nil {
		p.add("%s: pause and maintenance are both set (an app is paused or in maintenance, not both)", at)
	}
	if ps := a.Pause; ps != nil {
		if ps.MaxWait == 0 {
			ps.MaxWait = Duration(DefaultPauseMaxWait)
		}
		if ps.MaxHeld == 0 {
			ps.MaxHeld = DefaultPauseMaxHeld
		}
		if w := ps.MaxWait.D(); w < time.Millisecond || w > MaxPauseWait {
			p.add("%s.pause.max_wait: %s is out of range 1ms..%s", at, w, MaxPauseWait)
		}
		if ps.MaxHeld < 1 || ps.MaxHeld > MaxPauseHeld {
			p.add("%s.pause.max_held: %d is out of range 1..%d", at, ps.MaxHeld, MaxPauseHeld)
		}
	}
	if m := a.Maintenance; m != nil {
		if m.RetryAfter == 0 {
			m.RetryAfter = Duration(DefaultMaintenanceRetryAfter)
		}
		if d := m.RetryAfter.D(); d < time.Second || d > 24*time.Hour || d%time.Second != 0 {
			p.add("%s.maintenance.retry_after: %s must be whole seconds from 1s to 24h", at, d)
		}
		if err := CheckMaintenanceMessage(m.Message); err != nil {
			p.add("%s.maintenance.message: %v", at, err)
		}
	}
}

// CheckMaintenanceMessage says what is wrong with a maintenance page's
// message, if anything: it is UTF-8 text of at most MaxMaintenanceMessage
// bytes, without control characters other than newlines.
func CheckMaintenanceMessage(s string) error {
	if len(s) > MaxMaintenanceMessage {
		return fmt.Errorf("%d bytes, over the limit of %d", len(s), MaxMaintenanceMessage)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("not valid UTF-8")
	}
	for i, c := range s {
		if (c < 0x20 && c != '\n') || c == 0x7f {
			return fmt.Errorf("control character %U at byte %d (only text and newlines)", c, i)
		}
	}
	return nil
}

// pauseRule is a pause as one table applies it.
type pauseRule struct {
	maxWait    time.Duration
	maxHeld    int64
	retryAfter string // seconds, for the Retry-After header
}

// maintPage is a maintenance page as one table applies it.
type maintPage struct {
	message    string
	retryAfter string
}

// gated says whether the app's production requests pass its gate rather
// than going straight to a fleet.
func (a *app) gated() bool { return a.pause != nil || a.maint != nil }

// gate is what outlives the tables of one app: the requests it holds.
type gate struct {
	mu      sync.Mutex
	release chan struct{} // closed when the pause ends; nil when nobody waits
	held    atomic.Int64
}

// gates are the gates of every app, by name.
type gates struct {
	mu      sync.Mutex
	m       map[string]*gate
	stopped bool
}

// of returns the gate of the app named, made on first use.
func (gs *gates) of(name string) *gate {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if gs.m == nil {
		gs.m = map[string]*gate{}
	}
	g := gs.m[name]
	if g == nil {
		g = &gate{}
		gs.m[name] = g
	}
	return g
}

// applied releases the requests held for apps that tbl no longer pauses,
// once tbl is the running table: they are routed again by it.
func (gs *gates) applied(tbl *table) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	for name, g := range gs.m {
		a := tbl.apps[name]
		if a == nil || a.pause == nil {
			g.open()
		}
		if a == nil && g.held.Load() == 0 {
			delete(gs.m, name)
		}
	}
}

// stop releases every held request for good: the router is shutting down.
func (gs *gates) stop() {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	gs.stopped = true
	for _, g := range gs.m {
		g.open()
	}
}

func (gs *gates) isStopped() bool {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return gs.stopped
}

// wait returns the channel closed when the pause ends.
func (g *gate) wait() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.release == nil {
		g.release = make(chan struct{})
	}
	return g.release
}

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.release != nil {
		close(g.release)
		g.release = nil
	}
}

// buildGate gives a its gate and the table's pause or maintenance.
func (r *Router) buildGate(a *app, ac *AppConfig) {
	a.gate = r.gates.of(a.name)
	if ps := ac.Pause; ps != nil {
		a.pause = &pauseRule{maxWait: ps.MaxWait.D(), maxHeld: int64(ps.MaxHeld),
			retryAfter: strconv.Itoa(max(1, int((ps.MaxWait.D()+time.Second-1)/time.Second)))}
	}
	if m := ac.Maintenance; m != nil {
		msg := m.Message
		if msg == "" {
			msg = DefaultMaintenanceMessage
		}
		a.maint = &maintPage{message: msg, retryAfter: strconv.Itoa(int(m.RetryAfter.D() / time.Second))}
	}
}

// hold serves a production request of a gated app. It answers the request
// (maintenance, a full or stopped gate, a wait past the pause's max wait)
// and returns false, or waits for the pause to end and returns true: the
// request is then routed afresh by the running table.
func (h *handler) hold(ctx *fasthttp.RequestCtx, tbl *table, lr *listenerRoutes, a *app, start time.Time) bool {
	refuse := func(code, msg, retryAfter string) {
		h.r.unrouted.Add(1)
		if cl := ctx.Request.Header.ContentLength(); cl > 0 || cl == -1 {
			// The body is not read: the connection cannot carry another request.
			ctx.SetConnectionClose()
		}
		id := requestID(ctx.Request.Header.Peek(tbl.reqID))
		n := gatePage(ctx, tbl, id, a.name, code, msg, retryAfter)
		if a.access != nil {
			logRefused(ctx, a, lr, start, http.StatusServiceUnavailable, n, id)
		}
	}
	if m := a.maint; m != nil {
		refuse("maintenance", m.message, m.retryAfter)
		return false
	}
	p := a.pause
	if h.r.gates.isStopped() {
		refuse("paused", "This service is paused and its router is shutting down. Please try again.", "1")
		return false
	}
	g := a.gate
	if g.held.Add(1) > p.maxHeld {
		g.held.Add(-1)
		refuse("paused", fmt.Sprintf("This service is paused and already holds %d requests. Please try again shortly.", p.maxHeld), p.retryAfter)
		return false
	}
	defer g.held.Add(-1)
	release := g.wait()
	// A table applied before wait made the channel released nobody: look
	// at the running table once the channel is ours.
	if now := h.r.table.Load(); now != tbl {
		if b := now.apps[a.name]; b == nil || b.pause == nil || h.r.gates.isStopped() {
			return true
		}
	}
	// An HTTP/2 client that gives up frees its place at once; an HTTP/1
	// one keeps it until its max wait.
	var gone <-chan struct{}
	if sc, ok := ctx.Conn().(*streamConn); ok {
		gone = sc.gone
	}
	timer := time.NewTimer(time.Until(start.Add(p.maxWait)))
	defer timer.Stop()
	select {
	case <-release:
		return true
	case <-gone:
		refuse("paused", "The request was cancelled while the service was paused.", p.retryAfter)
		return false
	case <-timer.C:
		refuse("paused", fmt.Sprintf("This service is paused and the request waited %s. Please try again shortly.", p.maxWait), p.retryAfter)
		return false
	}
}

// gatePage answers 503 with Retry-After, as JSON when the client asks for
// JSON, as an HTML page when it asks for HTML (browsers), else as text.
func gatePage(ctx *fasthttp.RequestCtx, tbl *table, reqID, appName, code, msg, retryAfter string) int {
	rh := &ctx.Response.Header
	rh.Set("Retry-After", retryAfter)
	rh.Set("Cache-Control", "no-store")
	rh.Set("X-Content-Type-Options", "nosniff")
	if reqID != "" {
		rh.Set(tbl.reqID, reqID)
	}
	ctx.SetStatusCode(http.StatusServiceUnavailable)
	switch acceptKind(ctx.Request.Header.Peek("Accept")) {
	case "json":
		rh.SetContentType("application/json")
		ctx.SetBody(appendGateJSON(nil, appName, code, msg, retryAfter))
	case "html":
		rh.SetContentType("text/html; charset=utf-8")
		ctx.SetBodyString(gateHTML(code, msg))
	default:
		rh.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString(msg + "\n")
	}
	return len(ctx.Response.Body())
}
