//go:build linux

package router

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
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
	loopBufSize   = loopRequestMax // a connection's read buffer
	loopHighWater = 64 << 10       // output queued for a client past which its upstream is not read
	// loopBodyWait is how long a loop waits at least (its sweep looks once a
	// second) for the rest of a request body after its head; a slower client
	// is handed to the fasthttp path, which gives a body bodyTimeout.
	loopBodyWait = time.Second
	// firstRequestGrace is how long a drain waits for the first request of
	// a connection accepted just before it.
	firstRequestGrace = 2 * time.Second
)

// loopEngine is the set of loops of a router, started with its first plain listener.
type loopEngine struct {
	r     *Router
	loops []*loop
	next  atomic.Uint32
}

// LoopsEnv names the environment variable that sets how many event loops a
// router runs; see loopCount.
const LoopsEnv = "BLUEGREEN_ROUTER_LOOPS"

// loopCount is how many event loops serve the plain listeners: $LoopsEnv
// when it holds a positive number, else half the CPUs the Go runtime uses,
// at least one. The router shares its machine with the apps it serves and
// their load: on two cores, one loop took 0.63–0.68× HAProxy's CPU per
// request with a p99 below HAProxy's, two loops 0.63–0.72× with a p99
// up to 1.10× (busier loops park and wake less), for 4–10 % less throughput
// at 256 connections (docs/decisions/0002-event-loop.md).
func loopCount(getenv func(string) string, procs int) (int, error) {
	if v := getenv(LoopsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1024 {
			return 0, fmt.Errorf("%s=%q: want a number of event loops from 1 to 1024", LoopsEnv, v)
		}
		return n, nil
	}
	return max(1, procs/2), nil
}

func newLoopEngine(r *Router) (*loopEngine, error) {
	e := &loopEngine{r: r}
	n, err := loopCount(os.Getenv, runtime.GOMAXPROCS(0))
	if err != nil {
		return nil, err
	}
	for range n {
		lp, err := newLoop(e)
		if err != nil {
			for _, lp := range e.loops {
				unix.Close(lp.wake)
				lp.epf.Close()
			}
			return nil, err
		}
		e.loops = append(e.loops, lp)
	}
	// Started once all exist: a loop reads the others' state (keepPolling).
	for _, lp := range e.loops {
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
		lp.call(func() {
			lp.remove(ll.fd)
			lp.pausedAccept = slices.DeleteFunc(lp.pausedAccept, func(a *acceptor) bool { return a.ll == ll })
		})
	}
	ll.tcp.Close()
}

// drain closes the listener's idle connections and lets the others finish
// their request, until ctx ends; then it closes what remains. A connection
// whose first request has not started yet gets firstRequestGrace to send it:
// its client has not used it, so it would not send the request again, and
// after a hand-over another router serves the listener while this one may
// have accepted the connection last.
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
	grace := time.Now().Add(firstRequestGrace)
	sweep := func(final bool) {
		each(func(lp *loop, c *lconn) {
			switch {
			case c.x != nil:
				c.closeAfter = true
			case c.headSince == 0 && c.bodySince == 0 || final:
				lp.closeClient(c)
			}
		})
	}
	sweep(false)
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for ll.open.Load() > 0 {
		select {
		case <-ctx.Done():
			each(func(lp *loop, c *lconn) { lp.closeClient(c) })
			return
		case <-tick.C:
			sweep(time.Now().After(grace))
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
	h.once.Do(func() {
		close(h.done)
		for {
			select {
			case c := <-h.ch: // handed over, never served
				c.Close()
			default:
				return
			}
		}
	})
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

// They are recvfrom and sendto rather than read and write: on a socket these
// go straight to it, without the file layer's work (position lock, change
// notification) that read and write do for every file.

func rawRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

func rawWrite(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), unix.MSG_NOSIGNAL, 0, 0)
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

	fds          []registration // by file descriptor; h is nil where none is registered
	seq          uint32
	pausedAccept []*acceptor // listeners this loop accepts on again at its next sweep
	quit         bool
	clients      map[*lconn]struct{}
	ups          map[*uconn]struct{}
	idle         map[*target][]*uconn
	free         [][]byte
	scratch      []byte
	accessBuf    []byte // an access line on its way to the access log
	req          reqHead
	resp         respHead
	events       []unix.EpollEvent

	parked    atomic.Bool // waiting in Go's poller (see keepPolling)
	nowNs     int64       // when the current batch of events arrived
	batch     uint64      // counts the batches of events
	batchFull bool        // the batch may have left ready events for the next one
	nextSweep int64
	deadline  int64 // of the epoll descriptor, for wait; set to nextSweep
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
		clients: map[*lconn]struct{}{},
		ups:     map[*uconn]struct{}{},
		idle:    map[*target][]*uconn{},
		events:  make([]unix.EpollEvent, 256),
	}
	if err := lp.add(wake, unix.EPOLLIN, wakeFD{lp}); err != nil {
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
	if fd >= len(lp.fds) {
		// Descriptors are numbered from the lowest free one, so this stays
		// about as long as the process has descriptors open.
		lp.fds = append(lp.fds, make([]registration, fd+1-len(lp.fds)+64)...)
	}
	lp.fds[fd] = registration{lp.seq, h}
	return nil
}

// registered returns the handler of fd for an event carrying seq; nil when fd
// was closed since (and maybe reused) earlier in the batch.
func (lp *loop) registered(fd int, seq uint32) loopFD {
	if fd < 0 || fd >= len(lp.fds) || lp.fds[fd].seq != seq {
		return nil
	}
	return lp.fds[fd].h
}

// modify changes what a client or upstream connection is polled for. They are
// polled edge-triggered: an event says something new happened, so whoever
// handles it reads (or writes) until the socket says EAGAIN, or remembers
// that it has not. Level-triggered, epoll would check every socket it had
// reported once more at the next wait, only to find most of them drained.
// A change made here reports at once what is already ready.
func (lp *loop) modify(fd int, events uint32) {
	r := lp.fds[fd]
	ev := unix.EpollEvent{Events: events | unix.EPOLLET, Fd: int32(fd), Pad: int32(r.seq)}
	unix.EpollCtl(lp.ep, unix.EPOLL_CTL_MOD, fd, &ev)
}

func (lp *loop) remove(fd int) {
	if fd < len(lp.fds) && lp.fds[fd].h != nil {
		unix.EpollCtl(lp.ep, unix.EPOLL_CTL_DEL, fd, nil)
		lp.fds[fd] = registration{}
	}
}

// wakeFD is the eventfd that wakes a loop for posted work.
type wakeFD struct{ lp *loop }

func (w wakeFD) event(uint32) { w.lp.runPosted() }

func (lp *loop) run() {
	for !lp.quit {
		// While events keep coming, the loop polls without telling the Go
		// scheduler; with nothing to do, it parks in Go's own poller until its
		// epoll set has something (an epoll descriptor is itself pollable), so
		// no thread sits blocked in a system call and the processor is free.
		n, err := lp.wait()
		if err != nil && err != unix.EINTR {
			lp.e.r.log.Error("event loop stopped", "err", err)
			break
		}
		lp.nowNs = nanotime()
		lp.closeStalePooled(n)
		for i := range n {
			ev := lp.events[i]
			if h := lp.registered(int(ev.Fd), uint32(ev.Pad)); h != nil {
				h.event(ev.Events)
			}
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

// closeStalePooled closes, before anything else in the batch, the pooled
// upstream connections the batch has an event for: nothing is expected on an
// idle connection, so the upstream has closed it (or broken the protocol). A
// connection still pooled after this had, when the batch was collected,
// nothing to say, which is what lets a request that cannot be sent twice go
// out on it without a system call to check (see upstream). That holds only when
// the batch took every ready event: a full batch sets batchFull instead.
func (lp *loop) closeStalePooled(n int) {
	lp.batch++
	lp.batchFull = n == len(lp.events)
	for i := range n {
		ev := lp.events[i]
		if u, ok := lp.registered(int(ev.Fd), uint32(ev.Pad)).(*uconn); ok && u.x == nil && !u.connecting {
			lp.closeUpstream(u)
		}
	}
}

// wait collects the events that are ready; with none, it parks the loop until
// one is or the next sweep is due.
func (lp *loop) wait() (int, error) {
	if lp.deadline != lp.nextSweep {
		// Once per sweep, not per wait: setting a deadline moves a runtime timer.
		lp.deadline = lp.nextSweep
		lp.epf.SetReadDeadline(time.Unix(0, lp.deadline))
	}
	var n int
	var err error
	looks := 0
	rerr := lp.epRaw.Read(func(fd uintptr) bool {
		// Read forgets, as it starts, whether Go's poller saw the descriptor
		// become readable: the first look must be a real one.
		looks++
		n, err = rawEpollWait(int(fd), lp.events)
		lp.parked.Store(n == 0 && err == nil)
		return n > 0 || err != nil
	})
	lp.parked.Store(false)
	if looks > 1 {
		lp.e.keepPolling() // the loop was parked, and the poller has woken it
	}
	if rerr != nil {
		if !errors.Is(rerr, os.ErrDeadlineExceeded) {
			return 0, rerr
		}
		lp.nextSweep = 0 // due now; the sweep then sets the next deadline
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
		case c.bodySince != 0 && now-c.bodySince >= int64(loopBodyWait):
			lp.handover(c)
		case c.headSince != 0 && now-c.headSince > int64(headTimeout) && c.n == 0:
			lp.closeClient(c)
		case c.headSince != 0 && now-c.headSince > int64(headTimeout):
			c.closeAfter = true
			lp.answerPlain(c, lp.e.r.table.Load(), nil, http.StatusRequestTimeout, "the request did not arrive within "+headTimeout.String())
			if len(c.out) == 0 {
				lp.closeClient(c) // otherwise once the answer is out
			}
		case c.n == 0 && now-c.lastActive > int64(idleTimeout):
			lp.closeClient(c)
		}
	}
	for _, a := range lp.pausedAccept {
		if err := lp.add(a.ll.fd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE, a); err != nil {
			lp.e.r.log.Error("accepting again failed", "addr", a.ll.addr, "err", err)
		}
	}
	lp.pausedAccept = lp.pausedAccept[:0]
	for u := range lp.ups {
		switch {
		case u.x != nil && u.x.deadline != 0 && !u.x.gotHead && now >= u.x.deadline:
			lp.upstreamTimedOut(u)
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
		switch err {
		case nil:
		case unix.EAGAIN, unix.EINTR, unix.ECONNABORTED:
			return
		default:
			// Out of descriptors or memory: the socket stays readable, so this
			// loop stops accepting on it until its next sweep, a second away.
			e.r.log.Warn("accept failed; accepting again in a second", "addr", a.ll.addr, "err", err)
			a.lp.remove(a.ll.fd)
			a.lp.pausedAccept = append(a.lp.pausedAccept, a)
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
	if err := lp.add(c.fd, unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLET, c); err != nil {
		c.ll.open.Add(-1)
		unix.Close(c.fd)
		return
	}
	lp.clients[c] = struct{}{}
}
