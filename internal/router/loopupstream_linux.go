//go:build linux

package router

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// A loop's upstream connections, and the responses it passes on from them.

// uconn is an upstream connection of a loop.
type uconn struct {
	lp           *loop
	t            *target
	fd           int
	buf          []byte
	n            int
	out          []byte // the part of the request the socket has not taken yet
	x            *lexch
	connecting   bool
	paused       bool // not read while the client catches up
	closed       bool
	peerDone     bool // the upstream has closed its side (or failed): not to be pooled
	full         bool // the last read filled the buffer: the socket may hold more
	dialDeadline int64
	lastUsed     int64
	pooledIn     uint64 // the batch in which it was last pooled
}

// kill closes u from any goroutine: a drain's deadline.
func (u *uconn) kill() {
	u.lp.post(func() {
		if !u.closed {
			u.lp.upstreamFailed(u, net.ErrClosed)
		}
	})
}

// killIfBusy closes u from any goroutine if it carries an exchange: a drain
// that spreads its closes cuts only what a client would notice.
func (u *uconn) killIfBusy() {
	u.lp.post(func() {
		if !u.closed && u.x != nil {
			u.lp.upstreamFailed(u, net.ErrClosed)
		}
	})
}

// closeIfIdle closes u from any goroutine if it is pooled.
func (u *uconn) closeIfIdle() {
	u.lp.post(func() {
		if !u.closed && u.x == nil {
			u.lp.closeUpstream(u)
		}
	})
}

// upstream returns a pooled connection to t or starts a new one. A request
// that cannot be sent twice (once) gets only a pooled connection known to be
// open: one pooled before the current batch of events, which would otherwise
// have brought its end (see closeStalePooled), or failing that one that a
// non-blocking peek shows open.
func (lp *loop) upstream(t *target, fresh, once bool) (*uconn, bool, error) {
	pool := lp.idle[t]
	for !fresh && len(pool) > 0 {
		i := len(pool) - 1 // the most recently pooled, by default
		if once && !lp.batchFull {
			for j := i; j >= 0; j-- {
				if pool[j].pooledIn != lp.batch {
					i = j
					break
				}
			}
		}
		u := pool[i]
		pool = append(pool[:i], pool[i+1:]...)
		lp.idle[t] = pool
		switch {
		case lp.nowNs-u.lastUsed >= int64(idleConnTimeout):
		case once && (lp.batchFull || u.pooledIn == lp.batch) && !upstreamAlive(u.fd):
		default:
			return u, true, nil
		}
		lp.closeUpstream(u)
		pool = lp.idle[t]
	}
	sa := sockaddrOf(t.ap)
	fd, err := unix.Socket(sockFamily(t.ap), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, false, os.NewSyscallError("socket", err)
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	u := &uconn{lp: lp, t: t, fd: fd}
	err = unix.Connect(fd, sa)
	switch err {
	case nil:
	case unix.EINPROGRESS:
		u.connecting = true
		u.dialDeadline = lp.nowNs + int64(dialTimeout)
	default:
		unix.Close(fd)
		return nil, false, os.NewSyscallError("connect", err)
	}
	ev := uint32(unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET)
	if u.connecting {
		ev |= unix.EPOLLOUT
	}
	if err := lp.add(fd, ev, u); err != nil {
		unix.Close(fd)
		return nil, false, err
	}
	t.mu.Lock()
	if t.removed {
		t.mu.Unlock()
		lp.remove(fd)
		unix.Close(fd)
		return nil, false, errTargetRemoved
	}
	t.loopConns[u] = struct{}{}
	t.mu.Unlock()
	lp.ups[u] = struct{}{}
	return u, false, nil
}

func sockFamily(ap netip.AddrPort) int {
	if ap.Addr().Is4() || ap.Addr().Is4In6() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func sockaddrOf(ap netip.AddrPort) unix.Sockaddr {
	a := ap.Addr()
	if a.Is4() || a.Is4In6() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.Unmap().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
}

func (lp *loop) closeUpstream(u *uconn) {
	if u.closed {
		return
	}
	u.closed = true
	lp.remove(u.fd)
	unix.Close(u.fd)
	delete(lp.ups, u)
	if pool := lp.idle[u.t]; len(pool) > 0 {
		for i, p := range pool {
			if p == u {
				lp.idle[u.t] = append(pool[:i], pool[i+1:]...)
				break
			}
		}
		if len(lp.idle[u.t]) == 0 {
			delete(lp.idle, u.t)
		}
	}
	u.t.mu.Lock()
	delete(u.t.loopConns, u)
	u.t.mu.Unlock()
	if u.buf != nil {
		lp.putBuf(u.buf)
		u.buf = nil
	}
}

// pool returns u to the loop's idle connections of its target.
func (lp *loop) pool(u *uconn) {
	u.x = nil
	u.lastUsed = lp.nowNs
	u.pooledIn = lp.batch
	if u.buf != nil {
		lp.putBuf(u.buf)
		u.buf = nil
	}
	// After a read that filled the buffer, whatever else the upstream sent
	// (beyond the response: it broke the protocol) is not announced again.
	if u.peerDone || u.full && !upstreamAlive(u.fd) || u.t.retired.Load() || len(lp.idle[u.t]) >= maxIdlePerTarget {
		lp.closeUpstream(u)
		return
	}
	lp.idle[u.t] = append(lp.idle[u.t], u)
}

func (u *uconn) event(ev uint32) {
	lp := u.lp
	if u.connecting {
		if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
			return
		}
		if soerr, err := unix.GetsockoptInt(u.fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || soerr != 0 {
			if err == nil {
				err = unix.Errno(soerr)
			}
			lp.upstreamFailed(u, os.NewSyscallError("connect", err))
			return
		}
		u.connecting = false
		lp.modify(u.fd, unix.EPOLLIN|unix.EPOLLRDHUP)
		if u.x != nil {
			lp.sendRequest(u)
		}
		return
	}
	if u.paused {
		if ev&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			lp.upstreamFailed(u, os.NewSyscallError("read", unix.ECONNRESET))
		}
		return
	}
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		// The upstream's end came with (or after) what there is to read: the
		// connection serves out its exchange and is not pooled.
		u.peerDone = true
	}
	if ev&unix.EPOLLOUT != 0 && len(u.out) > 0 {
		lp.sendRest(u)
		if u.closed {
			return
		}
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 && !u.paused {
		lp.readUpstream(u)
	}
}

func (lp *loop) sendRequest(u *uconn) {
	b := u.x.req
	n, err := rawWrite(u.fd, b)
	if n == len(b) {
		return
	}
	if err != nil && err != unix.EAGAIN && err != unix.EINTR {
		lp.upstreamFailed(u, os.NewSyscallError("write", err))
		return
	}
	u.out = b[max(n, 0):]
	lp.modify(u.fd, unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLOUT)
}

func (lp *loop) sendRest(u *uconn) {
	n, err := rawWrite(u.fd, u.out)
	if err != nil && err != unix.EAGAIN && err != unix.EINTR {
		lp.upstreamFailed(u, os.NewSyscallError("write", err))
		return
	}
	if n > 0 {
		u.out = u.out[n:]
	}
	if len(u.out) == 0 {
		u.out = nil
		lp.modify(u.fd, unix.EPOLLIN|unix.EPOLLRDHUP)
	}
}

func (lp *loop) pauseUpstream(u *uconn) {
	u.paused = true
	lp.modify(u.fd, 0)
}

func (lp *loop) resumeUpstream(u *uconn) {
	u.paused = false
	lp.modify(u.fd, unix.EPOLLIN|unix.EPOLLRDHUP)
	lp.readUpstream(u)
}

// readUpstream reads what the upstream sent, until the socket has nothing more
// (connections are polled edge-triggered, see loop.modify; as in readClient, a
// short read says so unless the upstream has closed), the exchange is over, or
// the client cannot take more for now.
func (lp *loop) readUpstream(u *uconn) {
	for {
		if u.x == nil {
			// A pooled connection has nothing to say: the upstream closed it.
			lp.closeUpstream(u)
			return
		}
		if u.buf == nil {
			u.buf = lp.getBuf()
		}
		if u.n == len(u.buf) {
			lp.upstreamFailed(u, errors.New("response head larger than "+strconv.Itoa(loopBufSize)+" bytes"))
			return
		}
		space := len(u.buf) - u.n
		m, err := rawRead(u.fd, u.buf[u.n:])
		if m > 0 {
			u.n += m
			u.full = m == space
			x := u.x
			lp.onResponse(u)
			if !u.full && !u.peerDone || u.closed || u.paused || u.x != x {
				return // all there was, or the exchange is over
			}
			continue
		}
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		if err == nil {
			err = io.EOF
		} else {
			err = os.NewSyscallError("read", err)
		}
		lp.upstreamFailed(u, err)
		return
	}
}

// upstreamFailed ends u after an error or its end of stream, and with it the
// exchange it carried: retried when no response byte came, cut otherwise.
func (lp *loop) upstreamFailed(u *uconn, err error) {
	x := u.x
	lp.closeUpstream(u)
	if x == nil {
		return
	}
	if x.gotHead {
		if x.mode == bodyUntilEOF && errors.Is(err, io.EOF) {
			lp.writeClient(x.c, []byte("0\r\n\r\n"))
			lp.responseDone(x, u, false)
			return
		}
		// Mid-body: the client cannot be told otherwise than by closing.
		x.c.closeAfter = true
		x.c.out = nil
		lp.closeClient(x.c)
		lp.finish(x)
		return
	}
	t := u.t
	t.stats.inflight.Add(-1)
	f := failure{http.StatusBadGateway, "no response from " + t.addr + ": " + shortErr(err)}
	if u.connecting && localDialError(err) {
		f := localFailure(t, err)
		lp.fail(x, f.code, f.msg)
		return
	}
	if u.connecting {
		t.markSuspect()
		lp.retry(x, retryOther, failure{http.StatusBadGateway, "cannot connect to " + t.addr + ": " + shortErr(err)})
		return
	}
	if !x.replay {
		// The request may have reached the target: it is not sent again.
		lp.fail(x, f.code, f.msg)
		return
	}
	if x.reused {
		// The target closed a kept-alive connection: the others it had pooled
		// then, in every loop and on the fasthttp path, are most likely closed too.
		t.dropIdle()
		lp.retry(x, retrySame, f)
		return
	}
	t.markSuspect()
	lp.retry(x, retryOther, f)
}

// upstreamAlive reports whether a pooled connection is still open, by peeking
// without blocking: nothing to read is what an idle, open connection says.
func upstreamAlive(fd int) bool {
	var b [1]byte
	n, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return n <= 0 && err == unix.EAGAIN
}

// onResponse handles what arrived from the upstream of an exchange.
func (lp *loop) onResponse(u *uconn) {
	x := u.x
	if !x.gotHead {
		h := &lp.resp
		for {
			ok, err := parseResponseHead(u.buf[:u.n], x.head, x.tbl.reqID, h)
			if err != nil {
				lp.badResponse(x, u, err)
				return
			}
			if !ok {
				if u.n == len(u.buf) {
					lp.badResponse(x, u, errors.New("response head larger than "+strconv.Itoa(loopBufSize)+" bytes"))
				}
				return
			}
			if h.code == http.StatusSwitchingProtocols {
				t := u.t
				x.u = nil
				lp.closeUpstream(u)
				t.stats.inflight.Add(-1)
				lp.fail(x, http.StatusBadGateway, "upstream "+t.addr+" switched protocols without being asked")
				return
			}
			if h.code >= 200 {
				break
			}
			u.n = copy(u.buf, u.buf[h.size:u.n]) // 1xx: not passed on
			if u.n == 0 {
				return
			}
		}
		// A small body is awaited whole, so head and body leave in one write.
		if h.mode == bodyLength && !h.sse && h.length <= smallBody && int64(u.n-h.size) < h.length && h.size+int(h.length) <= len(u.buf) {
			return
		}
		if lp.startResponse(x, u, h) {
			return // x may already carry the client's next request
		}
	}
	lp.forwardBody(x, u)
}

func (lp *loop) badResponse(x *lexch, u *uconn, err error) {
	t := u.t
	x.u = nil
	lp.closeUpstream(u)
	t.stats.inflight.Add(-1)
	x.t = nil
	lp.fail(x, http.StatusBadGateway, "bad response from "+t.addr+": "+shortErr(err))
}

// startResponse sends the client the response head, and the body if it is all
// here; it reports whether the exchange is over.
func (lp *loop) startResponse(x *lexch, u *uconn, h *respHead) bool {
	x.gotHead = true
	x.t = u.t
	x.status = h.code
	x.mode, x.keep = h.mode, h.keep
	x.left = h.length
	c := x.c
	b := u.buf
	w := lp.scratch[:0]
	w = append(w, "HTTP/1.1 "...)
	w = strconv.AppendInt(w, int64(h.code), 10)
	w = append(w, ' ')
	if len(h.reason) > 0 {
		w = append(w, h.reason...)
	} else {
		w = append(w, http.StatusText(h.code)...)
	}
	w = append(w, "\r\n"...)
	for _, f := range h.fields {
		w = append(w, f.name(b)...)
		w = append(w, ": "...)
		w = append(w, f.value(b)...)
		w = append(w, "\r\n"...)
	}
	if !h.hasDate {
		w = lp.appendDate(w)
	}
	switch h.mode {
	case bodyLength:
		w = append(w, "Content-Length: "...)
		w = strconv.AppendInt(w, h.length, 10)
		w = append(w, "\r\n"...)
	case bodyChunked, bodyUntilEOF:
		w = append(w, "Transfer-Encoding: chunked\r\n"...)
	case bodyNone:
		if x.head && h.length >= 0 {
			w = append(w, "Content-Length: "...)
			w = strconv.AppendInt(w, h.length, 10)
			w = append(w, "\r\n"...)
		}
	}
	w = append(w, x.tbl.reqID...)
	w = append(w, ": "...)
	w = append(w, x.reqID...)
	w = append(w, "\r\n"...)
	if x.pin {
		w = append(w, "Set-Cookie: "...)
		w = append(w, (&http.Cookie{Name: x.f.app.cookie, Value: x.f.name, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}).String()...)
		w = append(w, "\r\n"...)
	}
	if c.closeAfter {
		w = append(w, "Connection: close\r\n"...)
	}
	w = append(w, "\r\n"...)
	body := u.buf[h.size:u.n] // what came of the body with the head
	if h.mode == bodyChunked || h.mode == bodyUntilEOF || h.sse {
		x.stream = true
		x.f.stats.streaming.Add(1)
		x.t.stats.streaming.Add(1)
	}
	if h.mode == bodyNone {
		u.n = copy(u.buf, body)
		lp.scratch = w
		lp.account(x)
		lp.writeClient(x.c, w)
		lp.responseDone(x, u, h.keep && u.n == 0)
		return true
	}
	if h.mode == bodyLength && int64(len(body)) >= h.length {
		// Head and whole body in one write.
		w = append(w, body[:h.length]...)
		x.out = h.length
		extra := len(body) > int(h.length)
		u.n = 0
		lp.scratch = w
		lp.account(x)
		lp.writeClient(x.c, w)
		lp.responseDone(x, u, h.keep && !extra)
		return true
	}
	u.n = copy(u.buf, body)
	lp.scratch = w
	lp.writeClient(x.c, w)
	return false
}

// forwardBody passes the body bytes in u's buffer on to the client.
func (lp *loop) forwardBody(x *lexch, u *uconn) {
	if u.n == 0 {
		return
	}
	p := u.buf[:u.n]
	done := false
	switch x.mode {
	case bodyLength:
		if int64(len(p)) > x.left {
			// More than the body: the connection cannot be reused.
			p = p[:x.left]
			x.keep = false
		}
		x.left -= int64(len(p))
		done = x.left == 0
		lp.writeClient(x.c, p)
	case bodyChunked:
		n, end, err := x.chunks.scan(p)
		if err != nil {
			lp.upstreamFailed(u, err)
			return
		}
		if end && n < len(p) {
			x.keep = false
		}
		p = p[:n]
		done = end
		lp.writeClient(x.c, p)
	case bodyUntilEOF:
		w := lp.scratch[:0]
		w = strconv.AppendInt(w, int64(len(p)), 16)
		w = append(w, "\r\n"...)
		w = append(w, p...)
		w = append(w, "\r\n"...)
		lp.scratch = w
		lp.writeClient(x.c, w)
	}
	x.out += int64(len(p))
	u.n = 0
	if done {
		lp.responseDone(x, u, x.keep)
		return
	}
	if len(x.c.out) > loopHighWater && !u.paused {
		lp.pauseUpstream(u)
	}
}

// responseDone ends an exchange whose response is complete.
func (lp *loop) responseDone(x *lexch, u *uconn, reusable bool) {
	x.u = nil
	if !u.closed {
		// A request not all sent (the target answered early) leaves the connection unusable.
		if reusable && u.n == 0 && len(u.out) == 0 {
			lp.pool(u)
		} else {
			lp.closeUpstream(u)
		}
	}
	lp.finish(x)
}
