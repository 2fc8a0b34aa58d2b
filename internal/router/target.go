package router

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	dialTimeout      = 5 * time.Second
	idleConnTimeout  = 30 * time.Second // below the keep-alive timeout of common servers
	maxIdlePerTarget = 512
	suspectFor       = 2 * time.Second
)

// target is one backend address of a fleet. It outlives tables: health, pooled
// connections and metrics carry over when a new table names the same target.
type target struct {
	fleet, addr string
	ap          netip.AddrPort // addr, when it is an IP address and port
	// app is the router app the target serves; a table that renames the
	// app (an app becoming a stack, or a stack an app of one service)
	// keeps the target and changes its name.
	app atomic.Pointer[string]

	healthy      atomic.Bool
	checks       atomic.Uint64             // active checks completed, so a caller can tell trust from a verdict
	lastCheck    atomic.Pointer[checkSeen] // what the last active check saw, for people
	suspectUntil atomic.Int64              // unix nanos; 0 when not suspect
	stats        *metrics

	health atomic.Pointer[HealthConfig]
	stop   context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	idle     []*upConn
	all      map[*upConn]struct{}
	upgraded map[io.Closer]struct{}
	// loopConns are the connections the event loops hold, pooled or in use.
	loopConns map[loopUpstream]struct{}
	removed   bool
	retired   atomic.Bool // removed, for readers that take no lock
}

// loopUpstream is an upstream connection of an event loop; its loop closes it.
type loopUpstream interface {
	kill()        // close it, cutting the exchange it carries
	closeIfIdle() // close it if it is pooled
	killIfBusy()  // close it if it carries an exchange
}

func newTarget(app, fleet, addr string) *target {
	t := &target{
		fleet: fleet, addr: addr,
		stats:     &metrics{},
		all:       map[*upConn]struct{}{},
		upgraded:  map[io.Closer]struct{}{},
		loopConns: map[loopUpstream]struct{}{},
	}
	t.ap, _ = netip.ParseAddrPort(addr)
	t.app.Store(&app)
	t.healthy.Store(true)
	return t
}

// appName is the router app the target serves now.
func (t *target) appName() string { return *t.app.Load() }

func (t *target) usable(now int64) bool {
	if !t.healthy.Load() {
		return false
	}
	s := t.suspectUntil.Load()
	return s == 0 || now >= s
}

// markSuspect takes the target out of rotation for a moment after a failed
// connection; an active check that passes clears it sooner.
func (t *target) markSuspect() {
	t.suspectUntil.Store(time.Now().Add(suspectFor).UnixNano())
}

// localDialError reports whether a failed connection attempt failed on the
// router's side: out of descriptors, memory, buffers or local ports. Such a
// failure says nothing about the target, so it must not count against it.
func localDialError(err error) bool {
	for _, e := range [...]syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.EADDRNOTAVAIL, syscall.ENOSPC} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// localFailure is what a client gets when the router could not open a
// connection for reasons of its own.
func localFailure(t *target, err error) failure {
	return failure{http.StatusServiceUnavailable, "the router is out of resources to connect to " + t.addr + ": " + shortErr(err)}
}

// upConn is a persistent connection to a target.
type upConn struct {
	net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	t        *target
	lastUsed time.Time
}

// getConn returns a pooled connection (reused = true) or dials a new one,
// giving up at deadline when it is not zero.
func (t *target) getConn(fresh bool, deadline time.Time) (c *upConn, reused bool, err error) {
	now := time.Now()
	t.mu.Lock()
	for !fresh && len(t.idle) > 0 {
		c = t.idle[len(t.idle)-1]
		t.idle = t.idle[:len(t.idle)-1]
		if now.Sub(c.lastUsed) < idleConnTimeout {
			t.mu.Unlock()
			return c, true, nil
		}
		delete(t.all, c)
		c.Conn.Close()
	}
	t.mu.Unlock()

	d := net.Dialer{Timeout: dialTimeout, Deadline: deadline, KeepAlive: 30 * time.Second}
	nc, err := d.Dial("tcp", t.addr)
	if err != nil {
		return nil, false, err
	}
	nc = rawSyscallConn(nc)
	c = &upConn{Conn: nc, br: bufio.NewReaderSize(nc, 8<<10), bw: bufio.NewWriterSize(nc, 8<<10), t: t}
	t.mu.Lock()
	if t.removed {
		t.mu.Unlock()
		nc.Close()
		return nil, false, errTargetRemoved
	}
	t.all[c] = struct{}{}
	t.mu.Unlock()
	return c, false, nil
}

func (t *target) putConn(c *upConn) {
	c.lastUsed = time.Now()
	t.mu.Lock()
	if t.removed || len(t.idle) >= maxIdlePerTarget {
		delete(t.all, c)
		t.mu.Unlock()
		c.Conn.Close()
		return
	}
	t.idle = append(t.idle, c)
	t.mu.Unlock()
}

// dropIdle closes every pooled connection of the target.
func (t *target) dropIdle() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	for _, c := range idle {
		delete(t.all, c)
	}
	loop := t.loopConnsLocked()
	t.mu.Unlock()
	for _, c := range idle {
		c.Conn.Close()
	}
	for _, c := range loop {
		c.closeIfIdle()
	}
}

func (t *target) loopConnsLocked() []loopUpstream {
	if len(t.loopConns) == 0 {
		return nil
	}
	out := make([]loopUpstream, 0, len(t.loopConns))
	for c := range t.loopConns {
		out = append(out, c)
	}
	return out
}

func (t *target) dropConn(c *upConn) {
	c.Conn.Close()
	t.mu.Lock()
	delete(t.all, c)
	t.mu.Unlock()
}

func (t *target) trackUpgrade(c io.Closer) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.removed {
		return false
	}
	t.upgraded[c] = struct{}{}
	return true
}

func (t *target) untrackUpgrade(c io.Closer) {
	t.mu.Lock()
	delete(t.upgraded, c)
	t.mu.Unlock()
}

// closeAll closes every connection of the target, in use or idle, and every
// upgraded connection: what a drain does at its deadline.
func (t *target) closeAll() {
	t.mu.Lock()
	conns := make([]io.Closer, 0, len(t.all)+len(t.upgraded))
	for c := range t.all {
		conns = append(conns, c.Conn)
	}
	for c := range t.upgraded {
		conns = append(conns, c)
	}
	t.idle = nil
	loop := t.loopConnsLocked()
	t.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	for _, c := range loop {
		c.kill()
	}
}

// retire stops the health check and closes idle connections; connections in use
// are closed when their request ends.
func (t *target) retire() {
	t.mu.Lock()
	t.removed = true
	t.retired.Store(true)
	idle := t.idle
	t.idle = nil
	for _, c := range idle {
		delete(t.all, c)
	}
	loop := t.loopConnsLocked()
	t.mu.Unlock()
	for _, c := range idle {
		c.Conn.Close()
	}
	for _, c := range loop {
		c.closeIfIdle()
	}
	t.stopHealth()
}

func (t *target) stopHealth() {
	if t.stop != nil {
		t.stop()
		<-t.done
		t.stop = nil
	}
}

// setHealth starts, changes or stops the active check of the target.
func (t *target) setHealth(parent context.Context, hc *HealthConfig, log *slog.Logger) {
	if hc == nil {
		t.stopHealth()
		t.health.Store(nil)
		t.healthy.Store(true)
		return
	}
	old := t.health.Swap(hc)
	if t.stop != nil && old != nil && reflect.DeepEqual(old, hc) {
		return
	}
	t.stopHealth()
	ctx, cancel := context.WithCancel(parent)
	t.stop, t.done = cancel, make(chan struct{})
	go t.runHealth(ctx, hc, log)
}

func (t *target) runHealth(ctx context.Context, hc *HealthConfig, log *slog.Logger) {
	defer close(t.done)
	client := &http.Client{
		// One connection kept open between checks, as Envoy's checks do:
		// a new connection every interval to each of thousands of targets
		// was most of an idle router's CPU. A target whose process ends
		// closes it, and the next check connects anew and finds it gone.
		// Small buffers: an answer to a check is short, and thousands of
		// these connections stay open.
		Transport: &http.Transport{Proxy: nil, MaxIdleConns: 1, MaxIdleConnsPerHost: 1, IdleConnTimeout: 5 * time.Minute,
			ReadBufferSize: 1 << 10, WriteBufferSize: 1 << 10},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	defer client.CloseIdleConnections()
	var okRun, failRun int
	// A target that has not yet passed its healthy threshold (an instance
	// starting) is probed from the start with a short, growing gap, so a
	// fast app is found healthy as soon as it answers; from then on the
	// configured interval rules.
	interval, gap, starting := hc.Interval.D(), firstProbeGap, true
	next := time.NewTimer(interval)
	defer next.Stop()
	wait := func(d time.Duration) bool {
		next.Reset(d)
		select {
		case <-ctx.Done():
			return false
		case <-next.C:
			return true
		}
	}
	// A target is taken on trust until its first check, which then decides at
	// once; later changes need the thresholds.
	first := true
	short := false // the last check could not run for want of the router's own resources
	for {
		saw, err := probe(ctx, client, t.addr, hc)
		if ctx.Err() != nil {
			return
		}
		if localDialError(err) {
			// Out of descriptors (or the like) here: no verdict on the target.
			if !short {
				log.Warn("health check could not run; the router is out of resources", "app", t.appName(), "fleet", t.fleet, "target", t.addr, "err", err)
			}
			short = true
			if !wait(interval) {
				return
			}
			continue
		}
		short = false
		t.lastCheck.Store(&checkSeen{saw: saw, passed: err == nil})
		if first && err != nil {
			failRun = hc.UnhealthyThreshold - 1
		}
		first = false
		if err == nil {
			okRun, failRun = okRun+1, 0
			t.suspectUntil.Store(0)
			if okRun >= hc.HealthyThreshold && !t.healthy.Load() {
				t.healthy.Store(true)
				log.Info("target healthy", "app", t.appName(), "fleet", t.fleet, "target", t.addr)
			}
		} else {
			okRun, failRun = 0, failRun+1
			if failRun >= hc.UnhealthyThreshold && t.healthy.Load() {
				t.healthy.Store(false)
				log.Warn("target unhealthy", "app", t.appName(), "fleet", t.fleet, "target", t.addr, "err", err)
			}
		}
		// Counted after the verdict is stored: a reader that sees the count
		// sees the state this check left.
		t.checks.Add(1)
		pause := interval
		if starting {
			switch {
			case t.healthy.Load() && okRun >= hc.HealthyThreshold:
				starting = false
			case err == nil:
				gap = firstProbeGap // passing: the next pass soon
				pause = min(gap, interval)
			default:
				gap = min(gap*2, interval)
				pause = gap
			}
		}
		if !wait(pause) {
			return
		}
	}
}

// firstProbeGap is the gap after the first check of a starting target;
// it doubles after each failure, up to the health interval.
const firstProbeGap = 10 * time.Millisecond

// checkSeen is what an active check saw, and whether it passed.
type checkSeen struct {
	saw    string
	passed bool
}

// lastSeen is what the last active check saw ("" before the first), and
// whether it passed.
func (t *target) lastSeen() (string, bool) {
	if p := t.lastCheck.Load(); p != nil {
		return p.saw, p.passed
	}
	return "", false
}

// probe runs one active check. saw says what it saw, for people: the
// answer's status and the start of its body, or why there was none.
func probe(ctx context.Context, client *http.Client, addr string, hc *HealthConfig) (saw string, err error) {
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout.D())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+hc.Path, nil)
	if err != nil {
		return err.Error(), err
	}
	if hc.Host != "" {
		req.Host = hc.Host
	}
	req.Header.Set("User-Agent", "bluegreen-health")
	resp, err := client.Do(req)
	if err != nil {
		return "GET " + hc.Path + ": " + checkError(err, hc.Timeout.D()), err
	}
	head := make([]byte, 240)
	n, _ := io.ReadFull(io.LimitReader(resp.Body, int64(len(head))), head)
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	saw = "GET " + hc.Path + " answered " + resp.Status
	if !strings.Contains(resp.Status, " ") {
		saw += " " + http.StatusText(resp.StatusCode)
	}
	b := head[:n]
	if strings.Contains(resp.Header.Get("Content-Type"), "html") {
		b = stripTags(b)
	}
	if body := wordsUpTo(oneLineText(b), 120); body != "" {
		saw += ": " + body
	}
	if !statusAccepted(resp.StatusCode, hc.Status) {
		return saw, &badStatusError{resp.StatusCode}
	}
	return saw, nil
}

// checkError says briefly why a check got no answer.
func checkError(err error, timeout time.Duration) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (nothing listens on the port yet)"
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no answer within %s", timeout)
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "the connection was closed without an answer"
	}
	return err.Error()
}

// stripTags drops what is between < and > of an HTML body, so that the
// words of an error page show, not its markup.
func stripTags(b []byte) []byte {
	out := make([]byte, 0, len(b))
	in := false
	for _, c := range b {
		switch {
		case c == '<':
			in = true
		case c == '>' && in:
			in = false
			out = append(out, ' ')
		case !in:
			out = append(out, c)
		}
	}
	return out
}

// wordsUpTo keeps the whole words of s that fit in n bytes.
func wordsUpTo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if i := strings.LastIndexByte(s[:n], ' '); i > 0 {
		return s[:i]
	}
	return s[:n]
}

// oneLineText is the printable start of a body on one line.
func oneLineText(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

type badStatusError struct{ code int }

func (e *badStatusError) Error() string { return "health check answered " + http.StatusText(e.code) }

func statusAccepted(code int, accepted []int) bool {
	if len(accepted) == 0 {
		return code >= 200 && code < 400
	}
	return slices.Contains(accepted, code)
}
