package server

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// Timeouts of the API's connections. An upload's body has a pace of its
// own (see api.Server), and streams of events and logs their own write
// deadlines.
const (
	// readHeaderTimeout bounds the wait for a request's headers, from the
	// connection's first byte or the end of the previous request.
	readHeaderTimeout = 10 * time.Second
	// idleTimeout closes a keep-alive connection with no request.
	idleTimeout = 60 * time.Second
	// bodyTimeout bounds the wait for the body of a request (JSON, a login
	// form), from its headers.
	bodyTimeout = 30 * time.Second
	// writeTimeout bounds the writing of an answer, from its request's
	// headers, so that a client that never reads cannot hold a connection.
	writeTimeout = 2 * time.Minute
	// maxHeaderBytes bounds a request's line and headers.
	maxHeaderBytes = 64 << 10
)

// Descriptors: the server keeps some for its own work (the store, the
// router's admin connection, hooks and their pipes, the process platform,
// uploads being unpacked) and gives the API's connections the rest, two
// each: the socket and a file its request may have open (a log it follows).
const (
	minReserve  = 128
	fdsPerConn  = 2
	minConns    = 16
	maxConns    = 4096
	maxReserved = 1024
)

// descriptorBudget is what the server decided about descriptors at start.
type descriptorBudget struct {
	limit    uint64 // RLIMIT_NOFILE, soft, after raising it to the hard one
	reserve  int    // kept for the engine's own work
	maxConns int    // the API's connection cap
	raised   bool   // the soft limit was raised here
	tight    bool   // the limit leaves the engine less than minReserve
}

// budgetDescriptors raises the soft descriptor limit to the hard one (Go's
// runtime does so at start too; this makes sure and reports it) and splits
// it between the engine and the API's connections.
func budgetDescriptors() (descriptorBudget, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return descriptorBudget{}, fmt.Errorf("reading the open-files limit: %w", err)
	}
	var b descriptorBudget
	if rl.Cur < rl.Max {
		up := rl
		up.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up); err == nil {
			rl, b.raised = up, true
		}
	}
	b.limit = rl.Cur
	return splitDescriptors(b), nil
}

// splitDescriptors gives the engine an eighth of the limit, at least
// minReserve and at most maxReserved, and the API's connections the rest,
// fdsPerConn each, between minConns and maxConns.
func splitDescriptors(b descriptorBudget) descriptorBudget {
	n := int(min(b.limit, 1<<24))
	b.reserve = min(max(minReserve, n/8), maxReserved)
	b.maxConns = min(max(minConns, (n-b.reserve)/fdsPerConn), maxConns)
	b.tight = n-b.maxConns*fdsPerConn < minReserve
	return b
}

// logAttrs are the decisions, for the start's log line.
func (b descriptorBudget) logAttrs() []any {
	return []any{"open_files_limit", b.limit, "open_files_raised", b.raised, "reserved_for_engine", b.reserve,
		"max_connections", b.maxConns, "read_header_timeout", readHeaderTimeout.String(), "idle_timeout", idleTimeout.String(),
		"body_timeout", bodyTimeout.String(), "write_timeout", writeTimeout.String()}
}

// limitListener caps the API's connections at max. At the cap a new
// connection takes the place of the one that has waited longest without a
// request in progress (an idle keep-alive, or one still sending its
// headers, as a slow or idle flood does); a client that sends its request
// at once is served. When every connection is running a request, the new
// one is answered 503 and closed at once, rather than left waiting in the
// kernel's queue.
type limitListener struct {
	net.Listener
	max int
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex
	conns    map[*trackedConn]struct{}
	refusing int // connections being answered 503
	evicted  int // since the last warning
	refused  int
	lastWarn time.Time
}

// warnEvery bounds the log lines about the cap while it is reached.
const warnEvery = 30 * time.Second

func newLimitListener(ln net.Listener, max int, log *slog.Logger) *limitListener {
	return &limitListener{Listener: ln, max: max, log: log, now: time.Now, conns: map[*trackedConn]struct{}{}}
}

// trackedConn is a connection the listener counts; its fields are guarded
// by the listener's mu.
type trackedConn struct {
	net.Conn
	l     *limitListener
	once  sync.Once
	busy  bool      // a request is in progress, or the connection was hijacked
	since time.Time // when it was accepted or last became idle
}

// Close closes the connection and frees its place.
func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// Accept returns the next connection within the cap.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		now := l.now()
		tc := &trackedConn{Conn: c, l: l, since: now}
		l.mu.Lock()
		var victim *trackedConn
		if len(l.conns) >= l.max {
			if victim = l.longestWaiting(); victim == nil {
				l.refused++
			} else {
				delete(l.conns, victim)
				l.evicted++
			}
			l.warn(now)
		}
		if len(l.conns) < l.max {
			l.conns[tc] = struct{}{}
		}
		_, kept := l.conns[tc]
		answer := !kept && l.refusing < maxRefusing
		if answer {
			l.refusing++
		}
		l.mu.Unlock()
		if victim != nil {
			victim.Conn.Close()
		}
		switch {
		case kept:
			return tc, nil
		case answer:
			go l.refuse(c)
		default:
			c.Close()
		}
	}
}

// longestWaiting is the connection without a request in progress that has
// waited longest, or nil; l.mu is held.
func (l *limitListener) longestWaiting() *trackedConn {
	var v *trackedConn
	for c := range l.conns {
		if !c.busy && (v == nil || c.since.Before(v.since)) {
			v = c
		}
	}
	return v
}

// warn logs that the cap is reached, at most every warnEvery; l.mu is held.
func (l *limitListener) warn(now time.Time) {
	if now.Sub(l.lastWarn) < warnEvery {
		return
	}
	l.log.Warn("the API is at its connection cap: closing connections that send no request, refusing new ones while all are busy",
		"max_connections", l.max, "closed", l.evicted, "refused", l.refused)
	l.lastWarn, l.evicted, l.refused = now, 0, 0
}

// refusal is the whole answer to a connection past the cap.
const refusal = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 82\r\n\r\n" +
	`{"code":"busy","error":"the API has too many connections open; try again shortly"}`

// Refusals: at most maxRefusing at once, each given refuseWithin to send
// its request's head (up to refuseReads bytes), so that the client reads
// the 503 as the answer to its request; past those the connection is just
// closed.
const (
	maxRefusing  = 16
	refuseWithin = time.Second
	refuseReads  = 16 << 10
)

// refuse answers a connection past the cap with 503 and closes it.
func (l *limitListener) refuse(c net.Conn) {
	defer func() {
		c.Close()
		l.mu.Lock()
		l.refusing--
		l.mu.Unlock()
	}()
	_ = c.SetDeadline(time.Now().Add(refuseWithin))
	buf := make([]byte, 4<<10)
	var head []byte
	for len(head) < refuseReads && !bytes.Contains(head, []byte("\r\n\r\n")) {
		n, err := c.Read(buf)
		head = append(head, buf[:n]...)
		if err != nil {
			break
		}
	}
	_, _ = c.Write([]byte(refusal))
}

// connState follows each connection's requests (the http.Server's
// ConnState hook), so that Accept knows which are waiting.
func (l *limitListener) connState(c net.Conn, s http.ConnState) {
	tc, ok := c.(*trackedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch s {
	case http.StateActive, http.StateHijacked:
		tc.busy = true
	case http.StateIdle:
		tc.busy, tc.since = false, l.now()
	}
}

// open reports the connections counted now.
func (l *limitListener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// deadlines sets a request's read deadline for its body and its write
// deadline for the answer. net/http lifts the read deadline once the body
// has been read to its end (its read for the next request starts then), so
// what the handler does afterwards is not cut by the client's deadline;
// TestBodyDeadline holds it to that. A request without a body gets no read
// deadline: that same read starts at once and would take a deadline as the
// client leaving. Handlers that stream, or pace an upload, set their own.
func deadlines(h http.Handler) http.Handler { return deadlinesAt(bodyTimeout, writeTimeout, h) }

func deadlinesAt(body, write time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		now := time.Now()
		_ = rc.SetWriteDeadline(now.Add(write))
		if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
			_ = rc.SetReadDeadline(now.Add(body))
		}
		h.ServeHTTP(w, r)
	})
}
