package router

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// The operator's settings of an app at the edge: a cap on request bodies, a
// time limit on a target's answer, and how a drain closes what outlives its
// deadline. The access log is in accesslog.go.

// Bounds of the settings, so that a typo is caught rather than obeyed.
const (
	minAppTimeout  = 10 * time.Millisecond
	maxDrainSpread = time.Hour
)

// checkEdgeOps checks an app's body cap, answer timeout and drain spread.
func checkEdgeOps(p *problems, at string, a *AppConfig) {
	if a.MaxBody < 0 {
		p.add("%s.max_body: %d must not be negative (0 means no limit)", at, a.MaxBody)
	}
	if a.Timeout != 0 && a.Timeout.D() < minAppTimeout {
		p.add("%s.timeout: %s is below the %s minimum (leave it out for no limit)", at, a.Timeout.D(), minAppTimeout)
	}
	if a.DrainSpread < 0 || a.DrainSpread.D() > maxDrainSpread {
		p.add("%s.drain_spread: %s is out of range 0..%s", at, a.DrainSpread.D(), maxDrainSpread)
	}
}

// errBodyTooLarge ends a streamed request body that grew past the app's cap.
var errBodyTooLarge = errors.New("the request body is larger than the app's limit")

// tooLarge is the answer to a body over the app's cap.
func tooLarge(a *app) (int, string) {
	return http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is larger than the limit of app %s (%s)", a.name, formatBytes(a.maxBody))
}

// timedOut is the answer when a target did not answer within the app's timeout.
func timedOut(a *app, t *target) (int, string) {
	return http.StatusGatewayTimeout, fmt.Sprintf("%s did not answer within %s (the timeout of app %s)", t.addr, a.timeout, a.name)
}

// formatBytes writes n in the largest binary unit that divides it.
func formatBytes(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + " " + u.name
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// capReader passes a request body on until it grows past left bytes.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	if int64(n) > c.left {
		// The byte past the cap is not passed on: the target never sees
		// more than the app takes.
		c.left = -1
		return n - 1, errBodyTooLarge
	}
	c.left -= int64(n)
	return n, err
}

// spreadDelay is when, counted from the deadline, the i-th of n connections
// is closed when a drain spreads its closes over spread: evenly, the first
// at once and the last one step before the end.
func spreadDelay(i, n int, spread time.Duration) time.Duration {
	if n <= 1 || spread <= 0 {
		return 0
	}
	return time.Duration(int64(spread) / int64(n) * int64(i))
}

// openClosers lists what of the target is still open and in use: upgraded
// connections, connections carrying a request or a stream, and the event
// loops' connections in use. Idle pooled connections are left out: closing
// them is not felt by any client.
func (t *target) openClosers() []func() {
	t.mu.Lock()
	defer t.mu.Unlock()
	idle := make(map[*upConn]bool, len(t.idle))
	for _, c := range t.idle {
		idle[c] = true
	}
	var out []func()
	for c := range t.upgraded {
		out = append(out, func() { c.Close() })
	}
	for c := range t.all {
		if !idle[c] {
			out = append(out, func() { c.Conn.Close() })
		}
	}
	for c := range t.loopConns {
		out = append(out, c.killIfBusy)
	}
	return out
}

// overCap reports whether a request says, before its body is read, that the
// body is larger than max: by its Content-Length, or by a body the server
// has already read whole.
func overCap(req *fasthttp.Request, max int64) bool {
	cl := req.Header.ContentLength()
	if int64(cl) > max {
		return true
	}
	// Body() of a streamed request would read it all: only a body already
	// in memory is measured here; a streamed one is cut as it grows.
	return cl == -1 && req.BodyStream() == nil && int64(len(req.Body())) > max
}

// timeout answers 504 for a target that did not answer in time. The target
// is not marked suspect: it is alive, only slow, and may still be working
// on the request, which is therefore not sent again.
func (x *exchange) timeout(t *target) {
	x.late = t
	x.f.stats.timeouts.Add(1)
	t.stats.timeouts.Add(1)
	x.fail(timedOut(x.f.app, t))
}

// protoOf names the protocol of a request on the goroutine path.
func protoOf(ctx *fasthttp.RequestCtx) string {
	if _, ok := ctx.Conn().(*streamConn); ok {
		return "HTTP/2.0"
	}
	if string(ctx.Request.Header.Protocol()) == "HTTP/1.0" {
		return "HTTP/1.0"
	}
	return "HTTP/1.1"
}

// logRefused writes the access line of a request of a logged app that the
// router answered itself, before any fleet took it.
func logRefused(ctx *fasthttp.RequestCtx, a *app, lr *listenerRoutes, start time.Time, code, n int, reqID string) {
	h := &ctx.Request.Header
	req := appendAccessRequest(nil, ctx.Method(), h.Host(), h.RequestURI(), clientIP(ctx), protoOf(ctx), lr.tls, lr.test)
	end := time.Now()
	a.access.add(appendAccessLine(nil, end, req, &accessEnd{app: a.name, status: code, out: int64(n), dur: end.Sub(start), reqID: []byte(reqID)}))
}
