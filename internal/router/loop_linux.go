//go:build linux

package router

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The event loop is the router's engine for plain HTTP listeners (decision
// 0002). Each loop is one goroutine with its own epoll set; it
// owns its client connections, its upstream connections and their pool, so no
// lock is taken on the way of a request. A loop serves the plain requests
// (parseRequestHead) from start to end, response bodies of any size and framing
// included, with back-pressure: while the client cannot take more, the upstream
// is not read. A connection whose next request is anything else is handed, with
// the bytes already read, to the listener's fasthttp server, which keeps it.

const (
	loopBufSize   = 16 << 10 // a connection's read buffer
	loopHighWater = 64 << 10 // output queued for a client past which its upstream is not read
)

// loopEngine is the set of loops of a router, started with its first plain listener.
type loopEngine struct {
	r     *Router
	loops []*loop
	next  atomic.Uint32
}

func newLoopEngine(r *Router) (*loopEngine, error) {
	e := &loopEngine{r: r}
	for range runtime.GOMAXPROCS(0) {
		lp, err := newLoop(e)
		if err != nil {
			e.stop()
			return nil, err
		}
		e.loops = append(e.loops, lp)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			lp.run()
		}()
	}
	return e, nil
}

// stop ends every loop; the connections they still hold are closed.
func (e *loopEngine) stop() {
	for _, lp := range e.loops {
		lp.post(func() { lp.quit = true })
	}
}

// loopListener is a plain listener whose connections the loops accept.
type loopListener struct {
	e       *loopEngine
	addr    string
	fd      int
	tcp     net.Listener
	handoff *handoffListener
	open    atomic.Int64 // connections held by loops
}

// attach starts accepting on ln in every loop.
func (e *loopEngine) attach(addr string, ln net.Listener, handoff *handoffListener) (*loopListener, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil, errors.New("listener has no file descriptor")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	ll := &loopListener{e: e, addr: addr, tcp: ln, handoff: handoff, fd: -1}
	if err := raw.Control(func(fd uintptr) { ll.fd = int(fd) }); err != nil {
		return nil, err
	}
	for _, lp := range e.loops {
		var err error
		if !lp.call(func() { err = lp.add(ll.fd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE, &acceptor{lp: lp, ll: ll}) }) {
			err = errors.New("router is shut down")
		}
		if err != nil {
			ll.detach()
			return nil, err
		}
	}
	return ll, nil
}

// detach stops accepting and closes the listening socket.
func (ll *loopListener) detach() {
	for _, lp := range ll.e.loops {
		lp.call(func() { lp.remove(ll.fd) })
	}
	ll.tcp.Close()
}

// drain closes the listener's idle connections and lets the others finish
// their request, until ctx ends; then it closes what remains.
func (ll *loopListener) drain(ctx context.Context) {
	each := func(f func(lp *loop, c *lconn)) {
		for _, lp := range ll.e.loops {
			lp.call(func() {
				for c := range lp.clients {
					if c.ll == ll {
						f(lp, c)
					}
				}
			})
		}
	}
	each(func(lp *loop, c *lconn) {
		c.closeAfter = true
		if c.x == nil {
			lp.closeClient(c)
		}
	})
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for ll.open.Load() > 0 {
		select {
		case <-ctx.Done():
			each(func(lp *loop, c *lconn) { lp.closeClient(c) })
			return
		case <-tick.C:
		}
	}
}

// handoffListener gives the fasthttp server the connections the loops hand over.
type handoffListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, ch: make(chan net.Conn, 64), done: make(chan struct{})}
}

func (h *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-h.ch:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoffListener) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

func (h *handoffListener) Addr() net.Addr { return h.addr }

// give passes c on without blocking the loop.
func (h *handoffListener) give(c net.Conn) {
	select {
	case h.ch <- c:
	default:
		go func() {
			select {
			case h.ch <- c:
			case <-h.done:
				c.Close()
			}
		}()
	}
}

// prefixConn returns bytes already read from the connection before reading it again.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// The loop's reads and writes are on non-blocking sockets and return at once,
// so they are made as raw system calls: the Go scheduler is not told, and does
// not hand the loop's processor to another thread while they run, which it
// otherwise does often enough on a busy machine to cost more than the calls.

func rawRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

func rawWrite(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

// rawEpollWait collects the events that are ready without waiting.
func rawEpollWait(ep int, events []unix.EpollEvent) (int, error) {
	n, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(ep), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// loopFD is what a loop knows about a registered file descriptor.
type loopFD interface {
	event(ev uint32)
}

type registration struct {
	seq uint32
	h   loopFD
}

type loop struct {
	e     *loopEngine
	ep    int
	epf   *os.File        // ep, as Go's poller knows it
	epRaw syscall.RawConn // to wait on ep there
	wake  int             // eventfd that wakes the loop for posted work

	mu     sync.Mutex
	cmds   []func()
	closed bool

	fds     map[int]registration
	seq     uint32
	quit    bool
	clients map[*lconn]struct{}
	ups     map[*uconn]struct{}
	idle    map[*target][]*uconn
	free    [][]byte
	scratch []byte
	req     reqHead
	resp    respHead
	events  []unix.EpollEvent

	nowNs     int64 // when the current batch of events arrived
	nextSweep int64
	dateSec   int64
	date      []byte
}

func newLoop(e *loopEngine) (*loop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	// Non-blocking, so that os.NewFile registers it with Go's poller.
	if err := unix.SetNonblock(ep, true); err != nil {
		unix.Close(ep)
		return nil, os.NewSyscallError("fcntl", err)
	}
	epf := os.NewFile(uintptr(ep), "epoll")
	epRaw, err := epf.SyscallConn()
	if err != nil {
		epf.Close()
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		epf.Close()
		return nil, os.NewSyscallError("eventfd", err)
	}
	lp := &loop{
		e: e, ep: ep, epf: epf, epRaw: epRaw, wake: wake,
		fds:     map[int]registration{},
		clients: map[*lconn]struct{}{},
		ups:     map[*uconn]struct{}{},
		idle:    map[*target][]*uconn{},
		events:  make([]unix.EpollEvent, 256),
	}
	if err := lp.add(wake, unix.EPOLLIN, nil); err != nil {
		epf.Close()
		unix.Close(wake)
		return nil, err
	}
	return lp, nil
}

// post runs f on the loop; it reports false when the loop has ended.
func (lp *loop) post(f func()) bool {
	lp.mu.Lock()
	if lp.closed {
		lp.mu.Unlock()
		return false
	}
	lp.cmds = append(lp.cmds, f)
	first := len(lp.cmds) == 1
	lp.mu.Unlock()
	if first {
		one := [8]byte{1}
		unix.Write(lp.wake, one[:])
	}
	return true
}

// call runs f on the loop and waits for it.
func (lp *loop) call(f func()) bool {
	done := make(chan struct{})
	if !lp.post(func() { f(); close(done) }) {
		return false
	}
	<-done
	return true
}

func (lp *loop) add(fd int, events uint32, h loopFD) error {
	lp.seq++
	ev := unix.EpollEvent{Events: events, Fd: int32(fd), Pad: int32(lp.seq)}
	if err := unix.EpollCtl(lp.ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	lp.fds[fd] = registration{lp.seq, h}
	return nil
}

func (lp *loop) modify(fd int, events uint32) {
	r := lp.fds[fd]
	ev := unix.EpollEvent{Events: events, Fd: int32(fd), Pad: int32(r.seq)}
	unix.EpollCtl(lp.ep, unix.EPOLL_CTL_MOD, fd, &ev)
}

func (lp *loop) remove(fd int) {
	if _, ok := lp.fds[fd]; ok {
		unix.EpollCtl(lp.ep, unix.EPOLL_CTL_DEL, fd, nil)
		delete(lp.fds, fd)
	}
}

func (lp *loop) run() {
	for !lp.quit {
		// While events keep coming, the loop polls without telling the Go
		// scheduler; with nothing to do, it parks in Go's own poller until its
		// epoll set has something (an epoll descriptor is itself pollable), so
		// no thread sits blocked in a system call and the processor is free.
		n, err := rawEpollWait(lp.ep, lp.events)
		if n == 0 && err == nil {
			n, err = lp.wait()
		}
		if err != nil && err != unix.EINTR {
			lp.e.r.log.Error("event loop stopped", "err", err)
			break
		}
		lp.nowNs = nanotime()
		for i := range n {
			ev := lp.events[i]
			fd := int(ev.Fd)
			reg, ok := lp.fds[fd]
			if !ok || reg.seq != uint32(ev.Pad) {
				continue // closed, and maybe reused, earlier in this batch
			}
			if reg.h == nil {
				lp.runPosted()
				continue
			}
			reg.h.event(ev.Events)
		}
		if lp.nowNs >= lp.nextSweep {
			lp.sweep()
			lp.nextSweep = lp.nowNs + int64(time.Second)
		}
	}
	lp.mu.Lock()
	lp.closed = true
	cmds := lp.cmds
	lp.cmds = nil
	lp.mu.Unlock()
	for _, f := range cmds {
		f()
	}
	for c := range lp.clients {
		lp.closeClient(c)
	}
	for u := range lp.ups {
		lp.closeUpstream(u)
	}
	unix.Close(lp.wake)
	lp.epf.Close()
}

// wait parks the loop until an event is ready or a second has passed (for the sweep).
func (lp *loop) wait() (int, error) {
	lp.epf.SetReadDeadline(time.Now().Add(time.Second))
	var n int
	var err error
	rerr := lp.epRaw.Read(func(fd uintptr) bool {
		n, err = rawEpollWait(int(fd), lp.events)
		return n > 0 || err != nil
	})
	if rerr != nil && !errors.Is(rerr, os.ErrDeadlineExceeded) {
		return 0, rerr
	}
	return n, err
}

func (lp *loop) runPosted() {
	var b [8]byte
	unix.Read(lp.wake, b[:])
	lp.mu.Lock()
	cmds := lp.cmds
	lp.cmds = nil
	lp.mu.Unlock()
	for _, f := range cmds {
		f()
	}
}

func (lp *loop) getBuf() []byte {
	if n := len(lp.free); n > 0 {
		b := lp.free[n-1]
		lp.free = lp.free[:n-1]
		return b
	}
	return make([]byte, loopBufSize)
}

func (lp *loop) putBuf(b []byte) {
	if len(lp.free) < 64 {
		lp.free = append(lp.free, b)
	}
}

// sweep enforces the head and idle timeouts, the dial timeout and the idle
// time of pooled upstream connections.
func (lp *loop) sweep() {
	now := lp.nowNs
	for c := range lp.clients {
		switch {
		case c.x != nil:
		case c.headSince != 0 && now-c.headSince > int64(headTimeout) && c.n == 0:
			lp.closeClient(c)
		case c.headSince != 0 && now-c.headSince > int64(headTimeout):
			c.closeAfter = true
			lp.answerPlain(c, lp.e.r.table.Load(), "", http.StatusRequestTimeout, "the request did not arrive within "+headTimeout.String())
			if len(c.out) == 0 {
				lp.closeClient(c) // otherwise once the answer is out
			}
		case c.n == 0 && now-c.lastActive > int64(idleTimeout):
			lp.closeClient(c)
		}
	}
	for u := range lp.ups {
		switch {
		case u.connecting && now > u.dialDeadline:
			lp.upstreamFailed(u, os.NewSyscallError("connect", unix.ETIMEDOUT))
		case u.x == nil && now-u.lastUsed > int64(idleConnTimeout):
			lp.closeUpstream(u)
		}
	}
	if sec := time.Now().Unix(); sec != lp.dateSec {
		lp.dateSec = sec
		lp.date = time.Unix(sec, 0).UTC().AppendFormat(lp.date[:0], http.TimeFormat)
	}
}

// acceptor is a listening socket in a loop's set.
type acceptor struct {
	lp *loop
	ll *loopListener
}

func (a *acceptor) event(uint32) {
	e := a.lp.e
	for range 64 {
		fd, sa, err := unix.Accept4(a.ll.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			if err != unix.EAGAIN && err != unix.EINTR && err != unix.ECONNABORTED {
				e.r.log.Warn("accept failed", "addr", a.ll.addr, "err", err)
			}
			return
		}
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		c := &lconn{ll: a.ll, fd: fd, ip: sockaddrIP(sa)}
		a.ll.open.Add(1)
		// Connections are dealt to the loops in turn.
		lp := e.loops[int(e.next.Add(1))%len(e.loops)]
		if lp == a.lp {
			lp.adopt(c)
		} else if !lp.post(func() { lp.adopt(c) }) {
			a.ll.open.Add(-1)
			unix.Close(fd)
		}
	}
}

func sockaddrIP(sa unix.Sockaddr) string {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return net.IP(sa.Addr[:]).String()
	case *unix.SockaddrInet6:
		return net.IP(sa.Addr[:]).String()
	}
	return ""
}

func (lp *loop) adopt(c *lconn) {
	c.lp = lp
	c.lastActive = nanotime()
	c.headSince = c.lastActive // the first request has headTimeout from the accept
	if err := lp.add(c.fd, unix.EPOLLIN|unix.EPOLLRDHUP, c); err != nil {
		c.ll.open.Add(-1)
		unix.Close(c.fd)
		return
	}
	lp.clients[c] = struct{}{}
}

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
	lost       bool // the client went away while a request was in flight
	headSince  int64
	lastActive int64
	reqBuf     []byte // the upstream request of the exchange, reused
	xs         lexch  // the exchange, reused
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
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 && !c.inOff {
		lp.readClient(c)
	}
}

func (lp *loop) readClient(c *lconn) {
	if c.buf == nil {
		c.buf = lp.getBuf()
	}
	if c.n == len(c.buf) {
		// Only while a request is in flight: more requests wait in the kernel.
		lp.setClientPoll(c, true, c.outOn)
		return
	}
	m, err := rawRead(c.fd, c.buf[c.n:])
	if m > 0 {
		c.n += m
		c.lastActive = lp.nowNs
		if c.x == nil {
			lp.serveClient(c)
		}
		return
	}
	if err == unix.EAGAIN || err == unix.EINTR {
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
		case headOther:
			lp.handover(c)
			return
		}
		c.headSince = 0
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
	lr       *listenerRoutes
	f        *fleet
	cur      *target // the target of the current attempt
	t        *target // the target that answered
	u        *uconn
	pin      bool
	head     bool
	reqID    string
	req      []byte // the request as sent upstream, kept for a retry
	start    time.Time
	tries    int
	fresh    bool
	reused   bool
	last     failure
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
}

// start routes the request whose head lp.req holds. It returns false, having
// changed nothing, when the request must go to the fasthttp path instead.
func (lp *loop) start(c *lconn) bool {
	h := &lp.req
	b := c.buf
	r := lp.e.r
	tbl := r.table.Load()
	start := time.Now()
	now := start.UnixNano()
	lr := tbl.listeners[c.ll.addr]
	var a *app
	var f *fleet
	var t *target
	pin := false
	code, msg := 0, ""
	switch {
	case lr == nil:
		code, msg = http.StatusNotFound, "no routes on this listener"
	default:
		if a = lr.lookup(b2s(h.host)); a == nil {
			code, msg = http.StatusNotFound, "no app for host "+strconv.Quote(string(h.host))
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
	reqID := requestID(h.lookup(b, tbl.reqID))
	if h.close {
		c.closeAfter = true
	}
	if code != 0 {
		r.unrouted.Add(1)
		lp.consume(c, h.size)
		lp.answerPlain(c, tbl, reqID, code, msg)
		return true
	}
	x := &c.xs
	*x = lexch{c: c, tbl: tbl, lr: lr, f: f, pin: pin, reqID: reqID, head: string(h.method) == "HEAD", start: start}
	x.req = lp.requestHead(x, h, b, c.reqBuf[:0])
	c.reqBuf = x.req
	lp.consume(c, h.size)
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
	w = append(w, h.target...)
	w = append(w, " HTTP/1.1\r\nHost: "...)
	w = append(w, h.host...)
	w = append(w, "\r\n"...)
	trust := x.tbl.trustXF
	var priorFor, priorProto, priorHost []byte
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
			}
		}
		if skipRequestField(k, x.tbl) {
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
	w = append(w, "\r\n"...)
	w = append(w, x.tbl.reqID...)
	w = append(w, ": "...)
	w = append(w, x.reqID...)
	w = append(w, "\r\n\r\n"...)
	return w
}

// skipRequestField is skipRequestHeader for field names as the client wrote them.
func skipRequestField(k []byte, tbl *table) bool {
	for _, name := range [...]string{"Host", "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"} {
		if asciiEqualFold(k, name) {
			return true
		}
	}
	if asciiEqualFold(k, "Forwarded") {
		return !tbl.trustXF
	}
	return asciiEqualFold(k, tbl.reqID)
}

// answerPlain answers the client with a short text, as plainError does.
func (lp *loop) answerPlain(c *lconn, tbl *table, reqID string, code int, msg string) int {
	body := "bluegreen: " + msg + "\n"
	w := lp.scratch[:0]
	w = append(w, "HTTP/1.1 "...)
	w = strconv.AppendInt(w, int64(code), 10)
	w = append(w, ' ')
	w = append(w, http.StatusText(code)...)
	w = append(w, "\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n"...)
	if reqID != "" {
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
	u, reused, err := lp.upstream(t, x.fresh)
	if err != nil {
		t.stats.inflight.Add(-1)
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
	x.last = f
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
	d := end.Sub(x.start)
	x.f.stats.record(end, x.status, d, 0, x.out)
	if x.t != nil {
		x.t.stats.record(end, x.status, d, 0, x.out)
	}
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
	dialDeadline int64
	lastUsed     int64
}

// kill closes u from any goroutine: a drain's deadline.
func (u *uconn) kill() {
	u.lp.post(func() {
		if !u.closed {
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

// upstream returns a pooled connection to t or starts a new one.
func (lp *loop) upstream(t *target, fresh bool) (*uconn, bool, error) {
	pool := lp.idle[t]
	for !fresh && len(pool) > 0 {
		u := pool[len(pool)-1]
		pool = pool[:len(pool)-1]
		lp.idle[t] = pool
		if lp.nowNs-u.lastUsed < int64(idleConnTimeout) {
			return u, true, nil
		}
		lp.closeUpstream(u)
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
	ev := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
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
	if u.buf != nil {
		lp.putBuf(u.buf)
		u.buf = nil
	}
	u.t.mu.Lock()
	removed := u.t.removed
	u.t.mu.Unlock()
	if removed || len(lp.idle[u.t]) >= maxIdlePerTarget {
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

func (lp *loop) readUpstream(u *uconn) {
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
	m, err := rawRead(u.fd, u.buf[u.n:])
	if m > 0 {
		u.n += m
		lp.onResponse(u)
		return
	}
	if err == unix.EAGAIN || err == unix.EINTR {
		return
	}
	if err == nil {
		err = io.EOF
	} else {
		err = os.NewSyscallError("read", err)
	}
	lp.upstreamFailed(u, err)
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
	if u.connecting {
		t.markSuspect()
		lp.retry(x, retryOther, failure{http.StatusBadGateway, "cannot connect to " + t.addr + ": " + shortErr(err)})
		return
	}
	if x.reused {
		lp.dropIdle(t)
		t.dropIdle()
		lp.retry(x, retrySame, f)
		return
	}
	t.markSuspect()
	lp.retry(x, retryOther, f)
}

// dropIdle closes the loop's pooled connections to t.
func (lp *loop) dropIdle(t *target) {
	for _, u := range append([]*uconn(nil), lp.idle[t]...) {
		lp.closeUpstream(u)
	}
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
	u.n = copy(u.buf, u.buf[h.size:u.n])
	if h.mode == bodyChunked || h.mode == bodyUntilEOF || h.sse {
		x.stream = true
		x.f.stats.streaming.Add(1)
		x.t.stats.streaming.Add(1)
	}
	if h.mode == bodyNone {
		lp.scratch = w
		lp.account(x)
		lp.toClient(x, w)
		lp.responseDone(x, u, h.keep && u.n == 0)
		return true
	}
	if h.mode == bodyLength && int64(u.n) >= h.length {
		// Head and whole body in one write.
		w = append(w, u.buf[:h.length]...)
		x.out = h.length
		extra := u.n > int(h.length)
		u.n = 0
		lp.scratch = w
		lp.account(x)
		lp.toClient(x, w)
		lp.responseDone(x, u, h.keep && !extra)
		return true
	}
	lp.scratch = w
	lp.toClient(x, w)
	return false
}

// toClient writes to the client of x unless it has gone.
func (lp *loop) toClient(x *lexch, b []byte) {
	lp.writeClient(x.c, b)
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
		lp.toClient(x, p)
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
		lp.toClient(x, p)
	case bodyUntilEOF:
		w := lp.scratch[:0]
		w = strconv.AppendInt(w, int64(len(p)), 16)
		w = append(w, "\r\n"...)
		w = append(w, p...)
		w = append(w, "\r\n"...)
		lp.scratch = w
		lp.toClient(x, w)
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
		if reusable && u.n == 0 {
			lp.pool(u)
		} else {
			lp.closeUpstream(u)
		}
	}
	lp.finish(x)
}
