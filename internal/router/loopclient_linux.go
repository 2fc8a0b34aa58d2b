//go:build linux

package router

import (
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// A loop's client connections, and the exchanges it runs for their requests.

// lconn is a client connection served by a loop.
type lconn struct {
	lp         *loop
	ll         *loopListener
	fd         int
	ip         string
	buf        []byte
	n          int
	out        []byte // written when the client can take it
	x          *lexch
	closeAfter bool // close once the current response is out
	inOff      bool // not polled for reading
	outOn      bool // polled for writing
	closed     bool
	lost       bool  // the client went away while a request was in flight
	peerDone   bool  // an event said the client closed its side (or failed)
	headSince  int64 // when the head of the next request began to arrive; 0 when none is arriving
	bodySince  int64 // when the head of the next request arrived, while its body has not all arrived
	lastActive int64
	reqBuf     []byte // the upstream request of the exchange, reused
	logBuf     []byte // the request's part of its access line, reused
	xs         lexch  // the exchange, reused
	idBuf      [maxRequestID]byte
}

func (c *lconn) event(ev uint32) {
	lp := c.lp
	if c.inOff && ev&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		// Reported whatever the interest: the client is gone.
		lp.clientGone(c)
		return
	}
	if ev&unix.EPOLLOUT != 0 {
		lp.flushClient(c)
		if c.closed {
			return
		}
	}
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.peerDone = true // the end is read after the data: see readClient
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 && !c.inOff {
		lp.readClient(c)
	}
}

// readClient reads what the client sent. Connections are polled edge-triggered
// (see loop.modify): it reads until the socket has nothing more (a read that
// does not fill the buffer says so, unless the client has closed: its end is
// then read too) or the buffer is full; in the latter case the rest is read
// once the connection is polled for input again, which reports what is
// already waiting.
func (lp *loop) readClient(c *lconn) {
	for !c.closed && !c.inOff {
		if c.buf == nil {
			c.buf = lp.getBuf()
		}
		if c.n == len(c.buf) {
			// Only while a request is in flight: more requests wait in the kernel.
			lp.setClientPoll(c, true, c.outOn)
			return
		}
		space := len(c.buf) - c.n
		m, err := rawRead(c.fd, c.buf[c.n:])
		if m > 0 {
			c.n += m
			c.lastActive = lp.nowNs
			if c.x == nil {
				lp.serveClient(c)
			}
			if m < space && !c.peerDone {
				return // all there was
			}
			continue
		}
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			if c.n == 0 && c.x == nil {
				lp.putBuf(c.buf)
				c.buf = nil
			}
			return
		}
		// The client closed or failed. A request in flight runs to its end, as on
		// the fasthttp path, and the connection is closed after it.
		if c.x != nil {
			c.closeAfter = true
			lp.setClientPoll(c, true, c.outOn)
			return
		}
		lp.closeClient(c)
		return
	}
}

// setClientPoll sets what a client connection is polled for.
func (lp *loop) setClientPoll(c *lconn, inOff, outOn bool) {
	if c.inOff == inOff && c.outOn == outOn {
		return
	}
	c.inOff, c.outOn = inOff, outOn
	var ev uint32
	if !inOff {
		ev |= unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if outOn {
		ev |= unix.EPOLLOUT
	}
	lp.modify(c.fd, ev)
}

// serveClient starts the requests buffered on c, one at a time.
func (lp *loop) serveClient(c *lconn) {
	for c.x == nil && c.n > 0 && !c.closed && !c.closeAfter {
		switch parseRequestHead(c.buf[:c.n], &lp.req) {
		case headIncomplete:
			if c.headSince == 0 {
				c.headSince = lp.nowNs
			}
			return
		case headBody:
			// The head is here and its body on its way; a body slower than
			// loopBodyWait is left to the fasthttp path (see sweep).
			c.headSince = 0
			if c.bodySince == 0 {
				c.bodySince = lp.nowNs
			}
			return
		case headOther:
			lp.handover(c)
			return
		}
		c.headSince, c.bodySince = 0, 0
		if !lp.start(c) {
			lp.handover(c)
			return
		}
	}
	if c.x == nil && c.closeAfter && len(c.out) == 0 && !c.closed {
		lp.closeClient(c)
	}
}

// handover gives c, with what was read of it, to the listener's fasthttp server.
func (lp *loop) handover(c *lconn) {
	lp.remove(c.fd)
	delete(lp.clients, c)
	c.closed = true
	c.ll.open.Add(-1)
	f := os.NewFile(uintptr(c.fd), "client")
	nc, err := net.FileConn(f)
	f.Close()
	var prefix []byte
	if c.n > 0 {
		prefix = append(prefix, c.buf[:c.n]...)
	}
	if c.buf != nil {
		lp.putBuf(c.buf)
		c.buf = nil
	}
	if err != nil {
		lp.e.r.log.Warn("handing a connection over failed", "err", err)
		return
	}
	c.ll.handoff.give(&guardConn{Conn: &prefixConn{Conn: nc, prefix: prefix}, ip: c.ip})
}

func (lp *loop) closeClient(c *lconn) {
	if c.closed {
		return
	}
	c.closed = true
	lp.remove(c.fd)
	delete(lp.clients, c)
	unix.Close(c.fd)
	c.ll.open.Add(-1)
	if c.buf != nil {
		lp.putBuf(c.buf)
		c.buf = nil
	}
	c.out = nil
}

// writeClient sends b to the client now, queueing what the socket does not take.
func (lp *loop) writeClient(c *lconn, b []byte) {
	if c.closed || c.lost || len(b) == 0 {
		return
	}
	if len(c.out) == 0 {
		n, err := rawWrite(c.fd, b)
		if n == len(b) {
			return
		}
		if err != nil && err != unix.EAGAIN && err != unix.EINTR {
			lp.clientGone(c)
			return
		}
		b = b[max(n, 0):]
	}
	c.out = append(c.out, b...)
	lp.setClientPoll(c, c.inOff, true)
}

// clientGone is a client whose connection failed while the router was writing.
// The exchange runs on until its upstream part ends, as on the fasthttp path.
func (lp *loop) clientGone(c *lconn) {
	c.out = nil
	c.closeAfter = true
	if c.x == nil {
		lp.closeClient(c)
		return
	}
	c.lost = true
	lp.remove(c.fd) // closed when the exchange ends
	c.inOff, c.outOn = true, false
	if u := c.x.u; u != nil && u.paused {
		lp.resumeUpstream(u)
	}
}

func (lp *loop) flushClient(c *lconn) {
	if len(c.out) > 0 {
		n, err := rawWrite(c.fd, c.out)
		if err != nil && err != unix.EAGAIN && err != unix.EINTR {
			lp.clientGone(c)
			return
		}
		if n > 0 {
			c.out = c.out[:copy(c.out, c.out[n:])]
		}
	}
	if len(c.out) > 0 {
		if x := c.x; x != nil && x.u != nil && x.u.paused && len(c.out) < loopHighWater/2 {
			lp.resumeUpstream(x.u)
		}
		return
	}
	c.out = nil
	lp.setClientPoll(c, c.inOff, false)
	if x := c.x; x != nil && x.u != nil && x.u.paused {
		lp.resumeUpstream(x.u)
	}
	if c.x == nil {
		if c.closeAfter {
			lp.closeClient(c)
		} else if c.n > 0 {
			lp.serveClient(c)
		}
	}
}

// lexch is one request on its way through a loop.
type lexch struct {
	c        *lconn
	tbl      *table
	f        *fleet
	cur      *target // the target of the current attempt
	t        *target // the target that answered
	u        *uconn
	pin      bool
	head     bool
	reqID    []byte // in the client connection's idBuf
	req      []byte // the request as sent upstream, body included, kept for a retry
	in       int64  // bytes of the request body
	start    int64  // unix nanoseconds: when the batch of events that brought the request began
	tries    int
	fresh    bool
	reused   bool
	replay   bool // replayable: idempotent and without a body, so it may be sent again
	status   int
	out      int64
	mode     int
	left     int64
	chunks   chunkScanner
	keep     bool // the upstream connection can be pooled after the body
	gotHead  bool
	stream   bool // counted in the streaming gauges
	recorded bool
	finished bool
	logReq   []byte  // the request's part of its access line; nil when the app logs none
	deadline int64   // unix nanoseconds: when the app's timeout ends; 0 for none
	late     *target // the target that did not answer within the app's timeout
}

// start routes the request whose head lp.req holds. It returns false, having
// changed nothing, when the request must go to the fasthttp path instead.
func (lp *loop) start(c *lconn) bool {
	h := &lp.req
	b := c.buf
	r := lp.e.r
	tbl := r.table.Load()
	// The time of the batch stands for when the request arrived: one clock
	// read less per request, and no later than the read of the request.
	now := lp.nowNs
	lr := tbl.listeners[c.ll.addr]
	var a *app
	var f *fleet
	var t *target
	pin := false
	code, msg := 0, ""
	switch {
	case lr == nil:
		code, msg = http.StatusNotFound, "no routes on this listener"
	case lr.edge != nil:
		return false // ACME challenges and redirects are the goroutine server's
	default:
		if a = lr.lookup(b2s(h.host), b2s(h.target)); a == nil {
			code, msg = http.StatusNotFound, "no app for host "+strconv.Quote(string(h.host))
			break
		}
		if a.gated() && !lr.test {
			return false // paused or in maintenance: the goroutine path holds or answers it
		}
		if a.maxBody > 0 && int64(h.length) > a.maxBody {
			code, msg = tooLarge(a)
			break
		}
		if lr.test {
			if f = a.testFleet; f == nil {
				code, msg = http.StatusNotFound, "app "+a.name+" has no test fleet"
			} else if f.fenced {
				code, msg = http.StatusServiceUnavailable, "test fleet "+f.name+" of app "+a.name+" is fenced"
			}
			break
		}
		var preview, pinned []byte
		if a.preview != "" {
			preview = h.lookup(b, a.preview)
		}
		if a.cookie != "" {
			for _, fl := range h.fields {
				if asciiEqualFold(fl.name(b), "Cookie") {
					if v := cookieValue(fl.value(b), a.cookie); v != nil {
						pinned = v
						break
					}
				}
			}
		}
		if f, pin = a.routeProduction(preview, pinned, now); f == nil {
			code, msg = http.StatusServiceUnavailable, "no healthy target for app "+a.name
		}
	}
	if code == 0 {
		if !f.loopReady {
			return false
		}
		t = f.pickTarget(nil, now)
	}
	reqID := appendRequestID(c.idBuf[:0], h.lookup(b, tbl.reqID))
	if h.close {
		c.closeAfter = true
	}
	if code != 0 {
		r.unrouted.Add(1)
		if h.length > 0 {
			// As on the fasthttp path: a refused request with a body ends its connection.
			c.closeAfter = true
		}
		if a != nil && a.access != nil {
			c.logBuf = appendAccessRequest(c.logBuf[:0], h.method, h.host, h.target, c.ip, "HTTP/1.1", false, lr.test)
		}
		lp.consume(c, h.size+h.length)
		n := lp.answerPlain(c, tbl, reqID, code, msg)
		if a != nil && a.access != nil {
			end := time.Now()
			lp.accessBuf = appendAccessLine(lp.accessBuf[:0], end, c.logBuf, &accessEnd{app: a.name, status: code,
				out: int64(n), dur: time.Duration(max(end.UnixNano()-now, 0)), reqID: reqID})
			a.access.add(lp.accessBuf)
		}
		return true
	}
	x := &c.xs
	*x = lexch{c: c, tbl: tbl, f: f, pin: pin, reqID: reqID, head: string(h.method) == "HEAD", start: now,
		in: int64(h.length), replay: h.length == 0 && idempotent(h.method)}
	x.req = lp.requestHead(x, h, b, c.reqBuf[:0])
	c.reqBuf = x.req
	if a.access != nil {
		c.logBuf = appendAccessRequest(c.logBuf[:0], h.method, h.host, h.target, c.ip, "HTTP/1.1", false, lr.test)
		x.logReq = c.logBuf
	}
	if a.timeout > 0 {
		x.deadline = now + int64(a.timeout)
		// The sweep that enforces it comes no later than the deadline.
		lp.nextSweep = min(lp.nextSweep, x.deadline)
	}
	lp.consume(c, h.size+h.length)
	c.x = x
	f.stats.inflight.Add(1)
	lp.attempt(x, t)
	return true
}

// consume drops n bytes from the front of c's buffer.
func (lp *loop) consume(c *lconn, n int) {
	c.n = copy(c.buf, c.buf[n:c.n])
}

// requestHead writes the upstream request, as exchange.writeHead does.
func (lp *loop) requestHead(x *lexch, h *reqHead, b, w []byte) []byte {
	w = append(w, h.method...)
	w = append(w, ' ')
	w = append(w, x.f.app.upstreamTarget(h.target)...)
	w = append(w, " HTTP/1.1\r\nHost: "...)
	w = append(w, h.host...)
	w = append(w, "\r\n"...)
	trust := x.tbl.trustXF
	a := x.f.app
	var priorFor, priorProto, priorHost []byte
	priorRealIP := false
	for _, f := range h.fields {
		k := f.name(b)
		if trust {
			switch {
			case asciiEqualFold(k, "X-Forwarded-For"):
				priorFor = f.value(b)
			case asciiEqualFold(k, "X-Forwarded-Proto"):
				priorProto = f.value(b)
			case asciiEqualFold(k, "X-Forwarded-Host"):
				priorHost = f.value(b)
			case asciiEqualFold(k, "X-Real-IP"):
				priorRealIP = true
			}
		}
		if skipRequestField(k, x.tbl) || (a.previewSecret != "" && asciiEqualFold(k, a.preview)) {
			continue
		}
		w = append(w, k...)
		w = append(w, ": "...)
		w = append(w, f.value(b)...)
		w = append(w, "\r\n"...)
	}
	w = append(w, "X-Forwarded-For: "...)
	if len(priorFor) > 0 {
		w = append(w, priorFor...)
		w = append(w, ", "...)
	}
	w = append(w, x.c.ip...)
	w = append(w, "\r\nX-Forwarded-Proto: "...)
	if len(priorProto) > 0 {
		w = append(w, priorProto...)
	} else {
		w = append(w, "http"...)
	}
	w = append(w, "\r\nX-Forwarded-Host: "...)
	if len(priorHost) > 0 {
		w = append(w, priorHost...)
	} else {
		w = append(w, h.host...)
	}
	if !priorRealIP {
		w = append(w, "\r\nX-Real-IP: "...)
		w = append(w, x.c.ip...)
	}
	w = append(w, "\r\n"...)
	w = append(w, x.tbl.reqID...)
	w = append(w, ": "...)
	w = append(w, x.reqID...)
	switch {
	case h.length > 0:
		w = append(w, "\r\nContent-Length: "...)
		w = strconv.AppendInt(w, int64(h.length), 10)
	case needsLength(h.method):
		w = append(w, "\r\nContent-Length: 0"...)
	}
	w = append(w, "\r\n\r\n"...)
	// The body is read whole before the request starts, so it leaves with the head.
	return append(w, b[h.size:h.size+h.length]...)
}

// skipRequestField is skipRequestHeader for field names as the client wrote them.
func skipRequestField(k []byte, tbl *table) bool {
	for _, name := range [...]string{"Host", "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Content-Length", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"} {
		if asciiEqualFold(k, name) {
			return true
		}
	}
	if !tbl.trustXF && forwardingLookalike(k) {
		return true
	}
	return asciiEqualFold(k, tbl.reqID)
}

// answerPlain answers the client with a short text, as plainError does.
func (lp *loop) answerPlain(c *lconn, tbl *table, reqID []byte, code int, msg string) int {
	body := "bluegreen: " + msg + "\n"
	w := lp.scratch[:0]
	w = append(w, "HTTP/1.1 "...)
	w = strconv.AppendInt(w, int64(code), 10)
	w = append(w, ' ')
	w = append(w, http.StatusText(code)...)
	w = append(w, "\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n"...)
	if len(reqID) > 0 {
		w = append(w, tbl.reqID...)
		w = append(w, ": "...)
		w = append(w, reqID...)
		w = append(w, "\r\n"...)
	}
	w = lp.appendDate(w)
	w = append(w, "Content-Length: "...)
	w = strconv.AppendInt(w, int64(len(body)), 10)
	if c.closeAfter {
		w = append(w, "\r\nConnection: close"...)
	}
	w = append(w, "\r\n\r\n"...)
	w = append(w, body...)
	lp.scratch = w
	lp.writeClient(c, w)
	return len(body)
}

func (lp *loop) appendDate(w []byte) []byte {
	if sec := time.Now().Unix(); sec != lp.dateSec || lp.date == nil {
		lp.dateSec = sec
		lp.date = time.Unix(sec, 0).UTC().AppendFormat(lp.date[:0], http.TimeFormat)
	}
	w = append(w, "Date: "...)
	w = append(w, lp.date...)
	return append(w, "\r\n"...)
}

// attempt sends the request to t, as exchange.try does.
func (lp *loop) attempt(x *lexch, t *target) {
	if t == nil {
		lp.fail(x, http.StatusServiceUnavailable, "no healthy target in fleet "+x.f.name+" of app "+x.f.app.name)
		return
	}
	x.tries++
	x.cur = t
	t.stats.inflight.Add(1)
	// A request that cannot be sent twice does not go out on a connection the
	// upstream has already closed.
	u, reused, err := lp.upstream(t, x.fresh, !x.replay)
	if err != nil {
		t.stats.inflight.Add(-1)
		if localDialError(err) {
			// The router's own shortage: another target would fare no better.
			f := localFailure(t, err)
			lp.fail(x, f.code, f.msg)
			return
		}
		if !errors.Is(err, errTargetRemoved) {
			t.markSuspect()
		}
		lp.retry(x, retryOther, failure{http.StatusBadGateway, "cannot connect to " + t.addr + ": " + shortErr(err)})
		return
	}
	x.u, x.reused = u, reused
	u.x = x
	if !u.connecting {
		lp.sendRequest(u)
	}
}

// retry makes the next attempt, or answers with the last failure.
func (lp *loop) retry(x *lexch, o outcome, f failure) {
	x.u = nil
	t := x.cur
	if x.tries >= 3 {
		lp.fail(x, f.code, f.msg)
		return
	}
	x.fresh = o == retrySame
	if o == retryOther {
		if t = x.f.pickTarget(t, nanotime()); t == nil {
			lp.fail(x, f.code, f.msg)
			return
		}
	}
	lp.attempt(x, t)
}

func (lp *loop) fail(x *lexch, code int, msg string) {
	x.status = code
	x.out += int64(len("bluegreen: ") + len(msg) + 1)
	// Counted before the answer leaves, so whoever reads the answer reads the count.
	lp.account(x)
	lp.answerPlain(x.c, x.tbl, x.reqID, code, msg)
	lp.finish(x)
}

// account counts the exchange in the metrics, once.
func (lp *loop) account(x *lexch) {
	if x.recorded {
		return
	}
	x.recorded = true
	x.f.stats.inflight.Add(-1)
	if x.t != nil {
		x.t.stats.inflight.Add(-1)
	}
	if x.stream {
		x.f.stats.streaming.Add(-1)
		x.t.stats.streaming.Add(-1)
	}
	end := time.Now()
	d := time.Duration(max(end.UnixNano()-x.start, 0))
	var in int64
	if x.gotHead {
		in = x.in // a target answered: the body went upstream
	}
	x.f.stats.record(end, x.status, d, in, x.out)
	t := x.t
	if t == nil {
		t = x.late
	}
	if t != nil {
		t.stats.record(end, x.status, d, in, x.out)
	}
	if a := x.f.app; a.access != nil {
		lp.accessBuf = appendAccessLine(lp.accessBuf[:0], end, x.logReq, &accessEnd{app: a.name, fleet: x.f.name, target: t,
			status: x.status, in: in, out: x.out, dur: d, reqID: x.reqID, timeout: x.late != nil})
		a.access.add(lp.accessBuf)
	}
}

// upstreamTimedOut answers 504 for an exchange whose target has not sent
// the head of its answer within the app's timeout. The target is not taken
// for dead (it is alive, only slow), and the request, which it may still be
// working on, is not sent again.
func (lp *loop) upstreamTimedOut(u *uconn) {
	x, t := u.x, u.t
	x.u = nil
	lp.closeUpstream(u)
	t.stats.inflight.Add(-1)
	x.late = t
	x.f.stats.timeouts.Add(1)
	t.stats.timeouts.Add(1)
	code, msg := timedOut(x.f.app, t)
	lp.fail(x, code, msg)
}

// finish ends the exchange and lets the client's next request in.
func (lp *loop) finish(x *lexch) {
	if x.finished {
		return
	}
	x.finished = true
	lp.account(x)
	c := x.c
	c.x = nil
	c.lastActive = lp.nowNs // the idle time runs from the end of the response
	if c.closed {
		return
	}
	if c.closeAfter && len(c.out) == 0 {
		lp.closeClient(c)
		return
	}
	if c.inOff && !c.closeAfter {
		lp.setClientPoll(c, false, c.outOn)
	}
	if len(c.out) == 0 && c.n > 0 {
		lp.serveClient(c)
	}
}
