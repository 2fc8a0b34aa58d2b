package router

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

var (
	errTargetRemoved = errors.New("target was removed from the routing table")
	errBodySkipped   = errors.New("upstream answered before asking for the body")
)

// handler serves one listener.
type handler struct {
	r    *Router
	addr string
}

func (h *handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	tbl := h.r.table.Load()
	lr := tbl.listeners[h.addr]
	if lr == nil {
		h.r.unrouted.Add(1)
		plainError(w, tbl, "", http.StatusNotFound, "no routes on this listener")
		return
	}
	if g, ok := req.Context().Value(guardKey{}).(*guardConn); ok {
		if v, ok := g.pop(req.Method, req.RequestURI); ok && v.refuse != "" {
			h.r.unrouted.Add(1)
			w.Header().Set("Connection", "close")
			plainError(w, tbl, "", http.StatusBadRequest, v.refuse)
			return
		}
	}
	if req.Method == http.MethodConnect {
		h.r.unrouted.Add(1)
		plainError(w, tbl, "", http.StatusMethodNotAllowed, "CONNECT is not supported")
		return
	}
	a := lr.lookup(req.Host)
	if a == nil {
		h.r.unrouted.Add(1)
		plainError(w, tbl, "", http.StatusNotFound, fmt.Sprintf("no app for host %q", req.Host))
		return
	}
	now := nanotime()
	var f *fleet
	pin := false
	if lr.test {
		if f = a.testFleet; f == nil {
			h.r.unrouted.Add(1)
			plainError(w, tbl, "", http.StatusNotFound, "app "+a.name+" has no test fleet")
			return
		}
	} else {
		f, pin = a.routeProduction(req, now)
		if f == nil {
			h.r.unrouted.Add(1)
			plainError(w, tbl, "", http.StatusServiceUnavailable, "no healthy target for app "+a.name)
			return
		}
	}
	x := exchange{w: w, req: req, tbl: tbl, lr: lr, f: f, pin: pin, start: time.Now()}
	x.reqID = requestID(req.Header.Get(tbl.reqID))
	f.stats.inflight.Add(1)
	t := x.run(f.pickTarget(nil, now))
	f.stats.inflight.Add(-1)
	if !x.recorded {
		end := time.Now()
		d := end.Sub(x.start)
		f.stats.record(end, x.status, d, x.in, x.out)
		if t != nil {
			t.stats.record(end, x.status, d, x.in, x.out)
		}
	}
	if x.abort {
		// The response is already under way: cutting the connection is the only way
		// to tell the client it is incomplete.
		panic(http.ErrAbortHandler)
	}
}

// exchange is one request on its way through the router.
type exchange struct {
	w        http.ResponseWriter
	req      *http.Request
	tbl      *table
	lr       *listenerRoutes
	f        *fleet
	pin      bool
	t        *target // the target answering
	reqID    string
	start    time.Time
	status   int
	in, out  int64
	abort    bool
	recorded bool
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
// may be replayed (an idempotent request without a body). It returns the target
// that answered, for its metrics.
func (x *exchange) run(t *target) *target {
	if t == nil {
		x.fail(http.StatusServiceUnavailable, "no healthy target in fleet "+x.f.name+" of app "+x.f.app.name)
		return nil
	}
	var last failure
	for range 3 {
		o, f := x.try(t)
		if o == done {
			return t
		}
		last = f
		if o == retryOther {
			next := x.f.pickTarget(t, nanotime())
			if next == nil {
				break
			}
			t = next
		}
	}
	x.fail(last.code, last.msg)
	return t
}

func (x *exchange) fail(code int, msg string) {
	x.status = code
	x.out += int64(plainError(x.w, x.tbl, x.reqID, code, msg))
}

func (x *exchange) try(t *target) (outcome, failure) {
	req := x.req
	t.stats.inflight.Add(1)
	defer t.stats.inflight.Add(-1)
	hasBody := req.Body != nil && req.Body != http.NoBody
	replayable := !hasBody && idempotent(req.Method)

	uc, reused, err := t.getConn(req.Context())
	if err == nil && reused && !replayable && !connAlive(uc.Conn) {
		t.dropConn(uc)
		uc, reused, err = t.getConn(req.Context())
	}
	if err != nil {
		if req.Context().Err() != nil {
			x.status = 499
			return done, failure{}
		}
		if !errors.Is(err, errTargetRemoved) {
			t.markSuspect()
		}
		return retryOther, failure{http.StatusBadGateway, "cannot connect to " + t.addr + ": " + shortErr(err)}
	}
	// A client that goes away must not leave the upstream request running.
	stop := contextAfter(req, uc.Conn)

	upgrade := upgradeType(req.Header)
	x.writeHead(uc.bw, t, upgrade, hasBody)
	var body *bodyWriter
	if hasBody {
		body = startBody(uc, req)
	} else if err := uc.bw.Flush(); err != nil {
		stop()
		t.dropConn(uc)
		f := failure{http.StatusBadGateway, "sending request to " + t.addr + ": " + shortErr(err)}
		if replayable {
			return retrySame, f
		}
		x.fail(f.code, f.msg)
		return done, f
	}

	if _, err := uc.br.Peek(1); err != nil {
		stopped := stop()
		t.dropConn(uc)
		if body != nil {
			body.abort(x.w)
		}
		if !stopped {
			x.status = 499
			return done, failure{}
		}
		f := failure{http.StatusBadGateway, "no response from " + t.addr + ": " + shortErr(err)}
		if body != nil && body.clientErr != nil {
			x.w.Header().Set("Connection", "close")
			f = failure{http.StatusBadRequest, "reading the request body: " + body.clientErr.Error()}
		}
		if replayable {
			if reused {
				return retrySame, f
			}
			t.markSuspect()
			return retryOther, f
		}
		x.fail(f.code, f.msg)
		return done, f
	}

	resp, err := x.readResponse(uc, body)
	if err != nil {
		stop()
		t.dropConn(uc)
		if body != nil {
			body.abort(x.w)
		}
		x.fail(http.StatusBadGateway, "bad response from "+t.addr+": "+shortErr(err))
		return done, failure{}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		stop()
		if body != nil {
			body.abort(x.w)
		}
		x.upgrade(t, uc, resp, upgrade)
		return done, failure{}
	}
	x.t = t
	if body != nil && body.running() {
		// The upstream answered before taking the whole body: the client connection
		// cannot carry another request reliably.
		x.w.Header().Set("Connection", "close")
	}
	eof := x.writeResponse(resp)
	ok := stop()
	if body != nil && !body.finish(x.w) {
		ok = false
	}
	if ok && eof && !resp.Close && uc.br.Buffered() == 0 {
		t.putConn(uc)
	} else {
		t.dropConn(uc)
	}
	return done, failure{}
}

// contextAfter closes conn when the client goes away; the returned stop reports
// false when that already happened.
func contextAfter(req *http.Request, conn net.Conn) func() bool {
	return contextAfterFunc(req, func() { conn.Close() })
}

// readResponse reads the head of the final response, passing 1xx responses on
// and releasing the body after a 100 Continue.
func (x *exchange) readResponse(uc *upConn, body *bodyWriter) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(uc.br, x.req)
		if err != nil {
			return nil, err
		}
		code := resp.StatusCode
		if code >= 200 || code == http.StatusSwitchingProtocols {
			if body != nil {
				body.release(false)
			}
			return resp, nil
		}
		if code == http.StatusContinue {
			if body != nil {
				body.release(true)
			}
			continue
		}
		// Other informational responses (103 Early Hints) go to the client as they are.
		h := x.w.Header()
		copyResponseHeader(h, resp.Header)
		x.w.WriteHeader(code)
		for k := range resp.Header {
			delete(h, k)
		}
	}
}

func (x *exchange) writeResponse(resp *http.Response) (eof bool) {
	h := x.w.Header()
	copyResponseHeader(h, resp.Header)
	if _, ok := resp.Header["Content-Type"]; !ok {
		h["Content-Type"] = nil // do not let the server sniff a type the upstream did not send
	}
	h.Set(x.tbl.reqID, x.reqID)
	if x.pin {
		h.Add("Set-Cookie", (&http.Cookie{Name: x.f.app.cookie, Value: x.f.name, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}).String())
	}
	for k := range resp.Trailer {
		h.Add("Trailer", k)
	}
	x.status = resp.StatusCode
	x.w.WriteHeader(resp.StatusCode)

	flush := resp.ContentLength == -1 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	flusher, _ := x.w.(http.Flusher)
	if flush {
		// Streams are counted so a drain can say how many it had to cut.
		x.f.stats.streaming.Add(1)
		x.t.stats.streaming.Add(1)
		defer x.f.stats.streaming.Add(-1)
		defer x.t.stats.streaming.Add(-1)
	}
	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	buf := *bufp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			w, werr := x.w.Write(buf[:n])
			x.out += int64(w)
			if werr != nil {
				return false // the client went away
			}
			if flush && flusher != nil {
				flusher.Flush()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			x.abort = true
			return false
		}
	}
	for k, vv := range resp.Trailer {
		if _, declared := h["Trailer"]; declared {
			h[k] = vv
		} else {
			h[http.TrailerPrefix+k] = vv
		}
	}
	return true
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// writeHead writes the request line and headers to the upstream connection.
func (x *exchange) writeHead(bw *bufio.Writer, t *target, upgrade string, hasBody bool) {
	req := x.req
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	uri := req.RequestURI
	if uri == "" || (uri[0] != '/' && uri != "*") {
		uri = req.URL.RequestURI()
	}
	bw.WriteString(uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	host := req.Host
	if host == "" {
		host = t.addr
	}
	bw.WriteString(host)
	bw.WriteString("\r\n")
	conn := req.Header["Connection"]
	for k, vv := range req.Header {
		if skipRequestHeader(k, x.tbl) || (conn != nil && httpguts.HeaderValuesContainsToken(conn, k)) {
			continue
		}
		for _, v := range vv {
			writeField(bw, k, v)
		}
	}
	clientIP, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		clientIP = req.RemoteAddr
	}
	xff, proto, xhost := clientIP, "http", req.Host
	if x.lr.tls {
		proto = "https"
	}
	if x.tbl.trustXF {
		if prior := req.Header["X-Forwarded-For"]; len(prior) > 0 {
			xff = strings.Join(prior, ", ") + ", " + clientIP
		}
		if v := req.Header.Get("X-Forwarded-Proto"); v != "" {
			proto = v
		}
		if v := req.Header.Get("X-Forwarded-Host"); v != "" {
			xhost = v
		}
	}
	writeField(bw, "X-Forwarded-For", xff)
	writeField(bw, "X-Forwarded-Proto", proto)
	if xhost != "" {
		writeField(bw, "X-Forwarded-Host", xhost)
	}
	writeField(bw, x.tbl.reqID, x.reqID)
	if upgrade != "" {
		bw.WriteString("Connection: Upgrade\r\n")
		writeField(bw, "Upgrade", upgrade)
	}
	switch {
	case req.ContentLength > 0:
		writeField(bw, "Content-Length", strconv.FormatInt(req.ContentLength, 10))
	case hasBody:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case req.Header["Content-Length"] != nil || req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
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

// skipRequestHeader drops hop-by-hop headers, the framing the router writes itself,
// and forwarding headers it rewrites.
func skipRequestHeader(k string, tbl *table) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length",
		"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host":
		return true
	case "Forwarded":
		return !tbl.trustXF
	}
	return k == tbl.reqID
}

func copyResponseHeader(dst, src http.Header) {
	conn := src["Connection"]
	for k, vv := range src {
		switch k {
		case "Connection", "Proxy-Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
			continue
		}
		if conn != nil && httpguts.HeaderValuesContainsToken(conn, k) {
			continue
		}
		dst[k] = vv
	}
}

func upgradeType(h http.Header) string {
	if !httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade") {
		return ""
	}
	return h.Get("Upgrade")
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// requestID keeps a well-formed incoming ID so that a trace spans proxies, and makes one otherwise.
func requestID(in string) string {
	if n := len(in); n > 0 && n <= 128 {
		ok := true
		for i := 0; i < n && ok; i++ {
			c := in[i]
			ok = c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == '.' || c == ':'
		}
		if ok {
			return in
		}
	}
	var b [16]byte
	var raw [8]byte
	v := rand.Uint64()
	for i := range raw {
		raw[i] = byte(v >> (8 * i))
	}
	hex.Encode(b[:], raw[:])
	return string(b[:])
}

// plainError answers with a short text the person reading it can act on.
func plainError(w http.ResponseWriter, tbl *table, reqID string, code int, msg string) int {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if reqID != "" {
		h.Set(tbl.reqID, reqID)
	}
	w.WriteHeader(code)
	n, _ := io.WriteString(w, "bluegreen: "+msg+"\n")
	return n
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
