package router

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
)

var errTargetRemoved = errors.New("target was removed from the routing table")

// smallBody is the largest response body read whole before it is sent on.
const smallBody = 16 << 10

// handler serves one listener.
type handler struct {
	r    *Router
	addr string
}

// b2s views bytes as a string without copying; the string must not outlive the request.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func (h *handler) serve(ctx *fasthttp.RequestCtx) { h.serveAt(ctx, ctx.Time()) }

// serveAt serves a request that arrived at start.
func (h *handler) serveAt(ctx *fasthttp.RequestCtx, start time.Time) {
	tbl := h.r.table.Load()
	if g, ok := ctx.Conn().(*guardConn); ok {
		if v := g.pop(ctx.Method(), ctx.RequestURI()); v.refuse != "" {
			ctx.SetConnectionClose()
			h.refuse(ctx, tbl, nil, nil, start, v.code, v.refuse)
			return
		}
	}
	h.route(ctx, tbl, start)
}

// refuse answers a request the router does not forward; a and lr are its
// app and listener once known (nil before).
func (h *handler) refuse(ctx *fasthttp.RequestCtx, tbl *table, a *app, lr *listenerRoutes, start time.Time, code int, msg string) {
	h.r.unrouted.Add(1)
	if cl := ctx.Request.Header.ContentLength(); cl > 0 || cl == -1 {
		// The body is not read: the connection cannot carry another request.
		ctx.SetConnectionClose()
	}
	id := requestID(ctx.Request.Header.Peek(tbl.reqID))
	n := plainError(ctx, tbl, id, code, msg)
	if a != nil && a.access != nil {
		logRefused(ctx, a, lr, start, code, n, id)
	}
}

// route routes a request by tbl. A request a pause held is routed again by
// the table that ended the pause.
func (h *handler) route(ctx *fasthttp.RequestCtx, tbl *table, start time.Time) {
	var a *app
	var lr *listenerRoutes
	refuse := func(code int, msg string) { h.refuse(ctx, tbl, a, lr, start, code, msg) }
	lr = tbl.listeners[h.addr]
	if lr == nil {
		refuse(http.StatusNotFound, "no routes on this listener")
		return
	}
	if lr.edge != nil && h.edge(ctx, tbl, lr) {
		return
	}
	if ctx.IsConnect() {
		// Whatever follows a CONNECT is meant for a tunnel, not for the router.
		ctx.SetConnectionClose()
		refuse(http.StatusMethodNotAllowed, "CONNECT is not supported")
		return
	}
	host, target, ok := routingTarget(ctx.Request.Header.Host(), ctx.Request.Header.RequestURI())
	if !ok {
		ctx.SetConnectionClose()
		refuse(http.StatusBadRequest, "the request target must be a path (/...), * or an absolute http:// or https:// URL")
		return
	}
	a = lr.lookup(b2s(host), b2s(target))
	if a == nil {
		refuse(http.StatusNotFound, "no app for host "+strconv.Quote(string(host)))
		return
	}
	if a.gated() && !lr.test {
		if h.hold(ctx, tbl, lr, a, start) {
			h.route(ctx, h.r.table.Load(), start)
		}
		return
	}
	if a.maxBody > 0 && overCap(&ctx.Request, a.maxBody) {
		refuse(tooLarge(a))
		return
	}
	now := start.UnixNano()
	var f *fleet
	pin := false
	if lr.test {
		if f = a.testFleet; f == nil {
			refuse(http.StatusNotFound, "app "+a.name+" has no test fleet")
			return
		}
		if f.fenced {
			refuse(http.StatusServiceUnavailable, "test fleet "+f.name+" of app "+a.name+" is fenced")
			return
		}
	} else {
		var preview, pinned []byte
		if a.preview != "" {
			preview = ctx.Request.Header.Peek(a.preview)
		}
		if a.cookie != "" {
			pinned = ctx.Request.Header.Cookie(a.cookie)
		}
		f, pin = a.routeProduction(preview, pinned, now)
		if f == nil {
			refuse(http.StatusServiceUnavailable, "no healthy target for app "+a.name)
			return
		}
	}
	x := &exchange{ctx: ctx, tbl: tbl, lr: lr, f: f, pin: pin, start: start, host: host, target: a.upstreamTarget(target)}
	// The ID is kept in the exchange itself: one allocation less per request.
	id := appendRequestID(x.idBuf[:0], ctx.Request.Header.Peek(tbl.reqID))
	x.reqID = unsafe.String(unsafe.SliceData(id), len(id))
	if a.access != nil {
		x.logReq = appendAccessRequest(nil, ctx.Method(), host, target, clientIP(ctx), protoOf(ctx), lr.tls, lr.test)
	}
	f.stats.inflight.Add(1)
	x.run(f.pickTarget(nil, now))
	if !x.deferred {
		x.finish()
	}
}

// exchange is one request on its way through the router. It ends in finish,
// which the handler calls, or the response body's Close, or the upgraded
// connection's end, whichever owns the exchange last.
type exchange struct {
	ctx      *fasthttp.RequestCtx
	tbl      *table
	lr       *listenerRoutes
	host     []byte // the host the request was routed by
	target   []byte // the request target as sent upstream: origin form, or *
	f        *fleet
	t        *target // the target that answered; nil when none did
	pin      bool
	reqID    string // in idBuf, which no one writes after
	idBuf    [maxRequestID]byte
	start    time.Time
	status   int
	out      int64
	body     *bodyWriter // the request body on its way upstream, if any
	deferred bool        // the response body or an upgrade finishes the exchange
	recorded bool
	once     sync.Once
	logReq   []byte  // the request's part of its access line; nil when the app logs none
	late     *target // the target that did not answer within the app's timeout
}

// finish counts the exchange once it is over.
func (x *exchange) finish() {
	x.once.Do(func() {
		x.f.stats.inflight.Add(-1)
		if x.t != nil {
			x.t.stats.inflight.Add(-1)
		}
		a := x.f.app
		if x.recorded && a.access == nil {
			return
		}
		var in int64
		if x.body != nil && x.body.got {
			in = x.body.n
		}
		end := time.Now()
		d := end.Sub(x.start)
		if !x.recorded {
			x.f.stats.record(end, x.status, d, in, x.out)
			if x.t != nil {
				x.t.stats.record(end, x.status, d, in, x.out)
			} else if x.late != nil {
				x.late.stats.record(end, x.status, d, in, x.out)
			}
		}
		if a.access != nil {
			t := x.t
			if t == nil {
				t = x.late
			}
			a.access.add(appendAccessLine(nil, end, x.logReq, &accessEnd{app: a.name, fleet: x.f.name, target: t,
				status: x.status, in: in, out: x.out, dur: d, reqID: []byte(x.reqID), timeout: x.late != nil}))
		}
	})
}

type outcome int

const (
	done       outcome = iota
	retrySame          // a pooled connection had gone stale: a fresh one to the same target
	retryOther         // the target failed before the request could have been processed
)

// failure is what the client gets when no attempt succeeded.
type failure struct {
	code int
	msg  string
}

// run forwards the request, retrying when nothing was sent, or when what was sent
// may be replayed (an idempotent request without a body).
func (x *exchange) run(t *target) {
	if t == nil {
		x.fail(http.StatusServiceUnavailable, "no healthy target in fleet "+x.f.name+" of app "+x.f.app.name)
		return
	}
	var last failure
	fresh := false
	for range 3 {
		o, f := x.try(t, fresh)
		if o == done {
			return
		}
		last = f
		fresh = o == retrySame
		if o == retryOther {
			next := x.f.pickTarget(t, nanotime())
			if next == nil {
				break
			}
			t = next
		}
	}
	x.fail(last.code, last.msg)
}

func (x *exchange) fail(code int, msg string) {
	x.status = code
	x.out += int64(plainError(x.ctx, x.tbl, x.reqID, code, msg))
}

// try makes one attempt on t; fresh asks for a new connection rather than a pooled one.
func (x *exchange) try(t *target, fresh bool) (outcome, failure) {
	ctx := x.ctx
	t.stats.inflight.Add(1)
	cl := ctx.Request.Header.ContentLength()
	hasBody := cl > 0 || cl == -1
	replayable := !hasBody && idempotent(ctx.Method())

	a := x.f.app
	var deadline time.Time // of a dial: the app's timeout, when it has one
	if a.timeout > 0 {
		deadline = x.start.Add(a.timeout)
	}
	uc, reused, err := t.getConn(fresh, deadline)
	if err == nil && reused && !replayable && !connAlive(uc.Conn) {
		t.dropConn(uc)
		uc, reused, err = t.getConn(true, deadline)
	}
	if err != nil {
		t.stats.inflight.Add(-1)
		if a.timeout > 0 && !time.Now().Before(deadline) {
			// As on the event loop: the app's timeout ended while connecting.
			x.timeout(t)
			return done, failure{}
		}
		if localDialError(err) {
			// The router's own shortage: another target would fare no better.
			f := localFailure(t, err)
			x.fail(f.code, f.msg)
			return done, f
		}
		if !errors.Is(err, errTargetRemoved) {
			t.markSuspect()
		}
		return retryOther, failure{http.StatusBadGateway, "cannot connect to " + t.addr + ": " + shortErr(err)}
	}

	upgrade := upgradeType(&ctx.Request.Header)
	x.writeHead(uc.bw, t, upgrade, cl)
	var body *bodyWriter
	if hasBody {
		body = startBody(uc, &ctx.Request, cl, x.f.app.maxBody)
		x.body = body
	} else if err := uc.bw.Flush(); err != nil {
		t.dropConn(uc)
		t.stats.inflight.Add(-1)
		f := failure{http.StatusBadGateway, "sending request to " + t.addr + ": " + shortErr(err)}
		if replayable {
			return retrySame, f
		}
		x.fail(f.code, f.msg)
		return done, f
	}

	if a.timeout > 0 {
		uc.Conn.SetReadDeadline(deadline)
	}
	if _, err := uc.br.Peek(1); err != nil {
		t.dropConn(uc)
		t.stats.inflight.Add(-1)
		if body != nil {
			body.abort(ctx)
		}
		f := failure{http.StatusBadGateway, "no response from " + t.addr + ": " + shortErr(err)}
		switch {
		case body != nil && errors.Is(body.clientErr, errBodyTooLarge):
			ctx.SetConnectionClose()
			f.code, f.msg = tooLarge(a)
			x.fail(f.code, f.msg)
			return done, f
		case body != nil && body.clientErr != nil:
			ctx.SetConnectionClose()
			f = failure{http.StatusBadRequest, "reading the request body: " + body.clientErr.Error()}
		case a.timeout > 0 && errors.Is(err, os.ErrDeadlineExceeded):
			// The target may still be working on it: it is neither retried
			// nor taken for dead.
			x.timeout(t)
			return done, f
		}
		if replayable {
			if reused {
				// The target closed a kept-alive connection: the others it had
				// pooled then are most likely closed as well.
				t.dropIdle()
				return retrySame, f
			}
			t.markSuspect()
			return retryOther, f
		}
		x.fail(f.code, f.msg)
		return done, f
	}
	x.t = t
	if upgrade != "" {
		x.upgradeOrRespond(uc, body, upgrade)
		return done, failure{}
	}
	if err := x.respond(uc, body); err != nil {
		t.dropConn(uc)
		// Reset first: abort may mark the client connection for closing.
		ctx.Response.Reset()
		if body != nil {
			body.abort(ctx)
		}
		if a.timeout > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			x.timeout(t)
			return done, failure{}
		}
		x.fail(http.StatusBadGateway, "bad response from "+t.addr+": "+shortErr(err))
	}
	return done, failure{}
}

// respond reads the upstream response head into the client's response and hands
// the body over to the server, which streams it after the handler returns.
func (x *exchange) respond(uc *upConn, body *bodyWriter) error {
	ctx := x.ctx
	rh := &ctx.Response.Header
	for {
		rh.Reset()
		if err := rh.Read(uc.br); err != nil {
			return err
		}
		if code := rh.StatusCode(); code >= 200 || code == http.StatusSwitchingProtocols {
			break
		}
		// 1xx: the server already answered 100 Continue itself; others are dropped.
	}
	if x.f.app.timeout > 0 {
		uc.Conn.SetReadDeadline(time.Time{}) // the body takes as long as it takes
	}
	cleanResponseHeader(rh)
	rh.Set(x.tbl.reqID, x.reqID)
	if x.pin {
		rh.Add("Set-Cookie", (&http.Cookie{Name: x.f.app.cookie, Value: x.f.name, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}).String())
	}
	code := rh.StatusCode()
	x.status = code
	length := rh.ContentLength() // -1 chunked, -2 until close
	noBody := ctx.IsHead() || code == http.StatusNoContent || code == http.StatusNotModified || code == http.StatusSwitchingProtocols
	keep := !rh.ConnectionClose()
	rh.ResetConnectionClose()
	sse := strings.HasPrefix(b2s(rh.ContentType()), "text/event-stream")
	if length >= 0 && length <= smallBody && !sse && !noBody && (body == nil || body.fromMemory || !body.running()) {
		// A small body is read now, in one piece: the upstream connection goes
		// back to the pool at once and the server writes head and body together.
		if uc.br.Buffered() >= length {
			// Usually it came with the head: copied without io.CopyN's allocations.
			b, _ := uc.br.Peek(length)
			ctx.Response.AppendBody(b)
			uc.br.Discard(length)
		} else if _, err := io.CopyN(ctx.Response.BodyWriter(), uc.br, int64(length)); err != nil {
			return err
		}
		bodyOK := body == nil || body.finish(ctx) // settles the body first, so its bytes are counted
		if keep && bodyOK && uc.br.Buffered() == 0 {
			uc.t.putConn(uc)
		} else {
			uc.t.dropConn(uc)
		}
		x.out = int64(length)
		return nil
	}
	rb := &respBody{x: x, uc: uc, body: body, close: !keep}
	switch {
	case noBody:
		rb.r, rb.eof = eofReader{}, true
	case length >= 0:
		rb.r = io.LimitReader(uc.br, int64(length))
	case length == -1:
		rb.r = &chunkedBody{br: uc.br, hdr: rh}
	default:
		rb.r, rb.close = uc.br, true
	}
	if body != nil && !body.fromMemory && !body.settle() {
		// The upstream answered before taking the whole body. The rest of the body
		// will be cut, so the client connection cannot carry another request; and a
		// small answer is read now so the cut does not lose it.
		ctx.SetConnectionClose()
		return rb.bufferEarlyAnswer(noBody)
	}
	if noBody {
		if ctx.IsHead() && length >= 0 {
			rh.SetContentLength(length)
		}
		rb.Close()
		return nil
	}
	if sse {
		length = -1 // stream it chunk by chunk, each flushed as it comes
	}
	if length < 0 {
		// Streams are counted so a drain can say how many it had to cut.
		rb.streaming = true
		x.f.stats.streaming.Add(1)
		x.t.stats.streaming.Add(1)
	}
	x.deferred = true
	ctx.Response.SetBodyStream(rb, max(length, -1))
	return nil
}

// bufferEarlyAnswer reads an answer that came before the request body was sent
// in full, up to a bound, then stops the body.
func (rb *respBody) bufferEarlyAnswer(noBody bool) error {
	const limit = 1 << 20
	var data []byte
	if !noBody {
		var err error
		data, err = io.ReadAll(io.LimitReader(rb, limit+1))
		if err != nil {
			return err
		}
		if len(data) > limit {
			return errors.New("early answer larger than 1 MiB")
		}
	}
	rb.close = true
	rb.Close()
	rb.x.out = int64(len(data))
	if !noBody {
		rb.x.ctx.Response.SetBodyRaw(data)
	}
	return nil
}

// respBody is the upstream response body as the server copies it to the client.
type respBody struct {
	x     *exchange
	uc    *upConn
	body  *bodyWriter
	r     io.Reader
	n     int64
	eof   bool
	close bool // the upstream connection cannot be reused
	// streaming bodies are counted in the fleet's and target's streaming gauges
	streaming bool
	once      sync.Once
}

func (rb *respBody) Read(p []byte) (int, error) {
	n, err := rb.r.Read(p)
	rb.n += int64(n)
	if err == io.EOF {
		rb.eof = true
	} else if err != nil {
		err = errors.New("upstream " + rb.uc.t.addr + " failed mid-response: " + shortErr(err))
	}
	return n, err
}

// Close ends the exchange: the upstream connection goes back to the pool when
// the body was read to its end, and the metrics are counted.
func (rb *respBody) Close() error {
	rb.once.Do(func() {
		ok := rb.eof && !rb.close && rb.uc.br.Buffered() == 0
		if rb.body != nil && !rb.body.finish(rb.x.ctx) {
			ok = false
		}
		if ok {
			rb.uc.t.putConn(rb.uc)
		} else {
			rb.uc.t.dropConn(rb.uc)
		}
		if rb.x.out == 0 {
			rb.x.out = rb.n
		}
		if rb.streaming {
			rb.x.f.stats.streaming.Add(-1)
			rb.uc.t.stats.streaming.Add(-1)
		}
		rb.x.finish()
	})
	return nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// chunkedBody decodes a chunked upstream body and passes its trailers on.
type chunkedBody struct {
	br   *bufio.Reader
	hdr  *fasthttp.ResponseHeader
	left int64
	done bool
}

func (c *chunkedBody) Read(p []byte) (int, error) {
	if c.done {
		return 0, io.EOF
	}
	if c.left == 0 {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseInt(b2s(bytes.TrimSpace(line)), 16, 64)
		if err != nil || size < 0 {
			return 0, errors.New("malformed chunk size")
		}
		if size == 0 {
			c.done = true
			return 0, c.trailers()
		}
		c.left = size
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	c.left -= int64(n)
	if c.left == 0 && err == nil {
		if _, err = c.br.Discard(2); err != nil {
			return n, err
		}
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (c *chunkedBody) trailers() error {
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return io.EOF
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok {
			c.hdr.AddBytesKV(bytes.TrimSpace(k), bytes.TrimSpace(v))
		}
	}
}

// clientIP is the client's address as text, formatted once per connection.
func clientIP(ctx *fasthttp.RequestCtx) string {
	if g, ok := ctx.Conn().(*guardConn); ok {
		if g.ip == "" {
			g.ip = ctx.RemoteIP().String()
		}
		return g.ip
	}
	return ctx.RemoteIP().String()
}

// writeHead writes the request line and headers to the upstream connection.
func (x *exchange) writeHead(bw *bufio.Writer, t *target, upgrade string, cl int) {
	h := &x.ctx.Request.Header
	bw.Write(h.Method())
	bw.WriteByte(' ')
	bw.Write(x.target)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	if len(x.host) > 0 {
		bw.Write(x.host)
	} else {
		bw.WriteString(t.addr)
	}
	bw.WriteString("\r\n")
	connTokens := h.Peek("Connection")
	trust := x.tbl.trustXF
	a := x.f.app
	for k, v := range h.All() {
		if skipRequestHeader(k, x.tbl) || (len(connTokens) > 0 && headerListContains(connTokens, k)) ||
			(a.previewSecret != "" && asciiEqualFold(k, a.preview)) {
			continue
		}
		bw.Write(k)
		bw.WriteString(": ")
		bw.Write(v)
		bw.WriteString("\r\n")
	}
	clientIP := clientIP(x.ctx)
	var priorFor, priorProto, priorHost []byte
	if trust {
		priorFor, priorProto, priorHost = h.Peek("X-Forwarded-For"), h.Peek("X-Forwarded-Proto"), h.Peek("X-Forwarded-Host")
	}
	bw.WriteString("X-Forwarded-For: ")
	if len(priorFor) > 0 {
		bw.Write(priorFor)
		bw.WriteString(", ")
	}
	bw.WriteString(clientIP)
	bw.WriteString("\r\nX-Forwarded-Proto: ")
	switch {
	case len(priorProto) > 0:
		bw.Write(priorProto)
	case x.lr.tls:
		bw.WriteString("https")
	default:
		bw.WriteString("http")
	}
	if len(priorHost) > 0 {
		bw.WriteString("\r\nX-Forwarded-Host: ")
		bw.Write(priorHost)
	} else if len(x.host) > 0 {
		bw.WriteString("\r\nX-Forwarded-Host: ")
		bw.Write(x.host)
	}
	if !trust || len(h.Peek("X-Real-Ip")) == 0 {
		// A trusted proxy in front may have set it; otherwise it is the peer.
		bw.WriteString("\r\nX-Real-IP: ")
		bw.WriteString(clientIP)
	}
	bw.WriteString("\r\n")
	writeField(bw, x.tbl.reqID, x.reqID)
	if upgrade != "" {
		bw.WriteString("Connection: Upgrade\r\n")
		writeField(bw, "Upgrade", upgrade)
	}
	switch {
	case cl > 0:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.Itoa(cl))
		bw.WriteString("\r\n")
	case cl == -1:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case h.IsPost() || h.IsPut() || h.IsPatch():
		bw.WriteString("Content-Length: 0\r\n")
	}
	bw.WriteString("\r\n")
}

func writeField(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// skipRequestHeader drops hop-by-hop headers, the framing the router writes
// itself, forwarding headers it rewrites, client-address headers a client
// could forge (unless the router trusts the proxy in front of it), and Expect
// (the router has already answered 100 Continue).
func skipRequestHeader(k []byte, tbl *table) bool {
	switch string(k) {
	case "Host", "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Expect",
		"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host":
		return true
	}
	if !tbl.trustXF && forwardingLookalike(k) {
		return true
	}
	return string(k) == tbl.reqID
}

// cleanResponseHeader removes hop-by-hop headers from an upstream response. One
// pass finds them; usually there are none, and nothing is deleted.
func cleanResponseHeader(h *fasthttp.ResponseHeader) {
	var drop [][]byte
	for k, v := range h.All() {
		switch string(k) {
		case "Connection":
			for _, tok := range bytes.Split(v, []byte(",")) {
				if tok = bytes.TrimSpace(tok); len(tok) > 0 {
					drop = append(drop, append([]byte(nil), tok...))
				}
			}
			drop = append(drop, []byte("Connection"))
		case "Proxy-Connection", "Keep-Alive", "Te", "Upgrade":
			drop = append(drop, append([]byte(nil), k...))
		}
	}
	for _, k := range drop {
		h.DelBytes(k)
	}
}

// headerListContains reports whether a comma-separated header value lists name.
// It scans in place: it runs for every header of a request that has a Connection header.
func headerListContains(list, name []byte) bool {
	for len(list) > 0 {
		tok := list
		if i := bytes.IndexByte(list, ','); i >= 0 {
			tok, list = list[:i], list[i+1:]
		} else {
			list = nil
		}
		if bytes.EqualFold(bytes.TrimSpace(tok), name) {
			return true
		}
	}
	return false
}

func upgradeType(h *fasthttp.RequestHeader) string {
	if !headerListContains(h.Peek("Connection"), []byte("Upgrade")) {
		return ""
	}
	return string(h.Peek("Upgrade"))
}

func idempotent(method []byte) bool {
	switch string(method) {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// requestID keeps a well-formed incoming ID so that a trace spans proxies, and makes one otherwise.
func requestID(in []byte) string {
	var b [maxRequestID]byte
	return string(appendRequestID(b[:0], in))
}

// maxRequestID is the longest incoming request ID that is kept.
const maxRequestID = 128

// appendRequestID appends to dst the request ID requestID returns.
func appendRequestID(dst, in []byte) []byte {
	if n := len(in); n > 0 && n <= maxRequestID {
		ok := true
		for i := 0; i < n && ok; i++ {
			c := in[i]
			ok = c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == '.' || c == ':'
		}
		if ok {
			return append(dst, in...)
		}
	}
	var raw [8]byte
	v := rand.Uint64()
	for i := range raw {
		raw[i] = byte(v >> (8 * i))
	}
	return hex.AppendEncode(dst, raw[:])
}

// plainError answers with a short text the person reading it can act on.
func plainError(ctx *fasthttp.RequestCtx, tbl *table, reqID string, code int, msg string) int {
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	if reqID != "" {
		ctx.Response.Header.Set(tbl.reqID, reqID)
	}
	ctx.SetStatusCode(code)
	body := "bluegreen: " + msg + "\n"
	ctx.SetBodyString(body)
	return len(body)
}

func shortErr(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

// connAlive reports whether an idle pooled connection is still open, by peeking
// without blocking: a request that cannot be replayed must not be sent on a
// connection the upstream has already closed.
func connAlive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := true
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = n > 0 || rerr == syscall.EAGAIN
		return true
	})
	return err == nil && alive
}
