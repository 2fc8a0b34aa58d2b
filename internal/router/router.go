// Package router is bluegreen's data plane: listeners, an atomically swapped
// routing table, weighted and sticky routing between fleets, health checks,
// drain and per-fleet metrics.
package router

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Options configure a Router.
type Options struct {
	Logger *slog.Logger
	// AccessLog receives one JSON line per request of the apps whose
	// access_log is set, written in batches; nil drops them.
	AccessLog io.Writer
}

// Router carries production and test traffic for every app in its table.
type Router struct {
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	table    atomic.Pointer[table]
	unrouted atomic.Uint64
	wg       sync.WaitGroup

	mu         sync.Mutex // serialises changes of the table and of what it refers to
	closed     bool
	targets    map[string]*target
	retiring   []*target // out of the table but maybe still carrying work
	fleetStats map[string]*metrics
	rr         map[string]*atomic.Uint64
	listeners  map[string]*listener
	admin      *http.Server
	loops      *loopEngine // serves plain listeners; nil until the first, or where there is none
	loopsErr   error
	edge       edgeState  // ACME challenges and certificate status
	access     *accessLog // nil when there is nowhere to write access lines
	gates      gates      // requests held for paused apps
	ho         handoverState
}

type listener struct {
	addr  string
	tls   bool
	certs atomic.Pointer[certSet] // by server name; replaced when the table or the files change
	front *tlsFront               // accepts and handshakes on a TLS listener
	edge  bool                    // named in some app's tls.http when opened
	srv   *fasthttp.Server
	// ln is closed by the router itself: fasthttp only learns its listener once
	// Serve runs, so a shutdown that came first would leave Serve accepting.
	ln net.Listener
	// loop accepts the connections of a plain listener; ln then only carries
	// those the loops hand to the fasthttp server.
	loop *loopListener
}

// stop closes the listener and lets the server's connections finish until ctx ends.
func (l *listener) stop(ctx context.Context) {
	if l.loop != nil {
		l.loop.detach()
	}
	if l.front != nil {
		l.front.stopAccepting(ctx)
	}
	l.ln.Close()
	var wg sync.WaitGroup
	if l.loop != nil {
		wg.Go(func() { l.loop.drain(ctx) })
	}
	if l.front != nil {
		l.front.close()
		wg.Go(func() { l.front.drain(ctx) })
	}
	l.srv.ShutdownWithContext(ctx)
	wg.Wait()
}

// New returns a router with an empty table and no listeners; Apply gives it both.
func New(opts Options) *Router {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Router{
		log: log, ctx: ctx, cancel: cancel,
		targets:    map[string]*target{},
		fleetStats: map[string]*metrics{},
		rr:         map[string]*atomic.Uint64{},
		listeners:  map[string]*listener{},
	}
	if opts.AccessLog != nil {
		r.access = newAccessLog(opts.AccessLog)
	}
	r.table.Store(&table{cfg: &Config{Apps: map[string]*AppConfig{}}, listeners: map[string]*listenerRoutes{},
		apps: map[string]*app{}, reqID: DefaultRequestIDHeader})
	r.wg.Go(r.reloadCerts)
	if r.access != nil {
		r.wg.Go(func() { r.access.run(ctx) })
	}
	return r
}

// Apply validates cfg and makes it the routing table in one atomic step. An
// invalid table, or one whose listeners cannot be opened, is rejected and the
// running table stays. It returns the new table's generation.
func (r *Router) Apply(cfg *Config) (uint64, error) {
	return r.applyOwned(cfg.clone())
}

// applyOwned is Apply of a table that nothing else holds, such as one just
// parsed from a push, which is not copied again: for a table of a thousand
// apps the copy costs about as much as the parse.
func (r *Router) applyOwned(cfg *Config) (uint64, error) {
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, errors.New("router is shut down")
	}
	if err := r.refuseApply(); err != nil {
		return 0, err
	}
	return r.applyLocked(cfg, nil)
}

// Config returns a copy of the running table.
func (r *Router) Config() *Config { return r.table.Load().cfg.clone() }

// Generation is the number of the running table; it rises with every Apply.
func (r *Router) Generation() uint64 { return r.table.Load().gen }

type listenSpec struct {
	tls   *TLSFiles
	app   string
	isTLS bool // the listener's own certificate, or apps with certificates of their own
}

// applyLocked puts cfg in place. changed, when not nil, names the only
// apps that may differ from the running table's (a patch): the others'
// compiled routes and targets are kept as they are. The caller holds r.mu.
func (r *Router) applyLocked(cfg *Config, changed map[string]bool) (uint64, error) {
	want := map[string]listenSpec{}
	var p problems
	for _, name := range sortedKeys(cfg.Apps) {
		l := cfg.listenersOf(cfg.Apps[name])
		for addr, files := range map[string]*TLSFiles{l.production: l.productionTLS, l.test: l.testTLS} {
			if addr == "" {
				continue
			}
			if prev, ok := want[addr]; ok && !sameTLS(prev.tls, files) {
				p.add("apps.%s: listener %s has other TLS files in app %s", name, addr, prev.app)
			}
			want[addr] = listenSpec{files, name, false}
		}
	}
	if err := p.err(); err != nil {
		return 0, err
	}
	for addr, on := range cfg.tlsListeners() {
		s := want[addr]
		s.isTLS = on
		want[addr] = s
	}
	for addr := range cfg.edgeListeners() {
		if _, ok := want[addr]; !ok {
			want[addr] = listenSpec{}
		}
	}
	for addr, spec := range want {
		if l, ok := r.listeners[addr]; ok && l.tls != spec.isTLS {
			return 0, fmt.Errorf("listener %s cannot switch between TLS and plain HTTP while running", addr)
		}
		if spec.tls != nil {
			// A listener's own certificate is the route file's, checked as it is
			// applied; apps' certificates fail alone, for their hosts only.
			if _, err := tls.LoadX509KeyPair(spec.tls.CertFile, spec.tls.KeyFile); err != nil {
				return 0, fmt.Errorf("listener %s: loading certificate: %w", addr, err)
			}
		}
	}
	var opened []*listener
	var lns []net.Listener
	for _, addr := range sortedKeys(want) {
		if _, ok := r.listeners[addr]; ok {
			continue
		}
		ln, err := r.listen(addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return 0, fmt.Errorf("opening listener %s: %w", addr, err)
		}
		l := &listener{addr: addr, tls: want[addr].isTLS, edge: cfg.edgeListeners()[addr]}
		opened = append(opened, l)
		lns = append(lns, ln)
	}

	tbl := r.build(cfg, changed)
	sets := cfg.certSets(time.Now())
	for addr, l := range r.listeners {
		if s := sets[addr]; s != nil {
			l.certs.Store(s)
		}
	}
	// The table first: a listener handed over by another router has
	// clients from its first moment.
	r.table.Store(tbl)
	r.gates.applied(tbl)
	for i, l := range opened {
		l.certs.Store(sets[l.addr])
		r.serve(l, lns[i])
	}
	r.reportCerts(sets)
	for addr, l := range r.listeners {
		if _, ok := want[addr]; !ok {
			delete(r.listeners, addr)
			r.shutdownListener(l)
		}
	}
	r.log.Info("routing table applied", "generation", tbl.gen, "apps", len(cfg.Apps))
	return tbl.gen, nil
}

func sameTLS(a, b *TLSFiles) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// build compiles cfg into a table, reusing the targets and metrics the running
// table already has so that health and counters carry over. changed, when
// not nil, names the only apps whose routes may differ from the running
// table's: every other app whose routes are the very same value keeps its
// compiled routes, and only the changed apps' targets are looked at, so a
// change of one app costs that app and the host maps, not every target.
func (r *Router) build(cfg *Config, changed map[string]bool) *table {
	prev := r.table.Load()
	tbl := &table{
		gen:       prev.gen + 1,
		cfg:       cfg,
		listeners: map[string]*listenerRoutes{},
		apps:      map[string]*app{},
		reqID:     http.CanonicalHeaderKey(cfg.RequestIDHeader),
		trustXF:   cfg.TrustForwarded,
	}
	usedTargets, usedStats := map[string]bool{}, map[string]bool{}
	renamed := r.renamedTargets(cfg, changed)
	for _, name := range sortedKeys(cfg.Apps) {
		ac := cfg.Apps[name]
		a := prev.apps[name]
		if changed == nil || changed[name] || a == nil || prev.cfg.Apps[name] != ac {
			a = r.compileApp(name, ac, renamed, usedTargets, usedStats)
		}
		tbl.apps[name] = a
		l := cfg.listenersOf(ac)
		r.route(tbl, l.production, false, l.productionTLS != nil || ac.TLS != nil, ac.Hosts, a)
		if l.test != "" {
			hosts := ac.Hosts
			if len(ac.TestHosts) > 0 {
				hosts = ac.TestHosts
			}
			r.route(tbl, l.test, true, l.testTLS != nil || ac.testTLS() != nil, hosts, a)
		}
		r.routeEdge(tbl, ac, a, l.production)
	}
	for _, lr := range tbl.listeners {
		sort.Slice(lr.wild, func(i, j int) bool { return len(lr.wild[i].suffix) > len(lr.wild[j].suffix) })
		for _, h := range lr.all() {
			sort.Slice(h.prefixed, func(i, j int) bool { return len(h.prefixed[i].prefix) > len(h.prefixed[j].prefix) })
		}
	}
	retire := func(key string) {
		if t := r.targets[key]; t != nil && !usedTargets[key] {
			delete(r.targets, key)
			t.retire()
			r.retiring = append(r.retiring, t)
		}
	}
	if changed == nil {
		for key := range r.targets {
			retire(key)
		}
		for key := range r.fleetStats {
			if !usedStats[key] {
				delete(r.fleetStats, key)
			}
		}
	} else {
		// Only the changed apps' targets and counters can have gone.
		for name := range changed {
			forEachTarget(name, prev.cfg.Apps[name], func(skey, key string) {
				retire(key)
				if !usedStats[skey] {
					delete(r.fleetStats, skey)
				}
			})
		}
	}
	// Retired targets are kept in view (for drains and shutdown) while they still
	// carry requests or upgraded connections.
	busy := r.retiring[:0]
	for _, t := range r.retiring {
		if t.stats.inflight.Load() > 0 {
			busy = append(busy, t)
		}
	}
	clear(r.retiring[len(busy):])
	r.retiring = busy
	return tbl
}

// forEachTarget calls fn with the key of the counters of each fleet of an
// app (nil: none) and the key of each of its targets in r.targets.
func forEachTarget(name string, ac *AppConfig, fn func(statsKey, targetKey string)) {
	if ac == nil {
		return
	}
	for fname, fc := range ac.Fleets {
		skey := name + "/" + fname + "/" + fc.Revision
		for _, addr := range fc.Targets {
			fn(skey, skey+"/"+addr)
		}
		if len(fc.Targets) == 0 {
			fn(skey, "")
		}
	}
}

// compileApp compiles one app's routes, taking its targets and counters
// from the running table where it has them, and marks them used.
func (r *Router) compileApp(name string, ac *AppConfig, renamed renamed, usedTargets, usedStats map[string]bool) *app {
	rr := r.rr[name]
	if rr == nil {
		rr = &atomic.Uint64{}
		r.rr[name] = rr
	}
	a := &app{name: name, prefix: ac.pathPrefix(), strip: ac.StripPrefix, byName: map[string]*fleet{}, preview: ac.PreviewHeader, rr: rr}
	if ac.PreviewSecret != "" {
		a.previewSecret = ac.PreviewSecret
		a.previewSum = sha256.Sum256([]byte(ac.PreviewSecret))
	}
	if ac.Sticky {
		a.cookie = ac.StickyCookie
	}
	if ac.AccessLog {
		a.access = r.access
	}
	a.maxBody, a.timeout = ac.MaxBody, ac.Timeout.D()
	for _, fname := range sortedKeys(ac.Fleets) {
		fc := ac.Fleets[fname]
		skey := name + "/" + fname + "/" + fc.Revision
		st := r.fleetStats[skey]
		if st == nil {
			st = &metrics{}
			r.fleetStats[skey] = st
		}
		usedStats[skey] = true
		f := &fleet{app: a, name: fname, revision: fc.Revision, weight: fc.Weight, fenced: fc.Fenced, stats: st}
		for _, addr := range fc.Targets {
			// The revision is part of the key so that a new revision's counters start at zero.
			key := name + "/" + fname + "/" + fc.Revision + "/" + addr
			t := r.targets[key]
			if t == nil {
				// The same instance under a renamed app keeps its
				// health, pool and the requests it carries.
				if old := renamed.take(fname + "/" + fc.Revision + "/" + addr); old != "" {
					t = r.targets[old]
					delete(r.targets, old)
					t.app.Store(&name)
					r.targets[key] = t
				}
			}
			if t == nil {
				t = newTarget(name, fname, addr)
				r.targets[key] = t
			}
			usedTargets[key] = true
			hc := ac.Health
			if fc.Health != nil {
				hc = fc.Health
			}
			t.setHealth(r.ctx, hc, r.log)
			f.targets = append(f.targets, t)
			f.fencedT = append(f.fencedT, slices.Contains(fc.FencedTargets, addr))
		}
		f.loopReady = true
		for _, t := range f.targets {
			f.loopReady = f.loopReady && t.ap.IsValid()
		}
		a.fleets = append(a.fleets, f)
		a.byName[fname] = f
	}
	// The preview header names fleets by role when the table gives roles.
	a.byPreview = a.byName
	for _, fname := range sortedKeys(ac.Fleets) {
		if ac.Fleets[fname].Role != "" {
			a.byPreview = map[string]*fleet{}
			for _, f := range a.fleets {
				if role := ac.Fleets[f.name].Role; role != "" {
					a.byPreview[role] = f
				}
			}
			break
		}
	}
	a.scheds = make([]atomic.Pointer[[]uint8], 1<<(len(a.fleets)+1))
	r.buildGate(a, ac)
	a.testFleet = a.byName[ac.TestFleet]
	return a
}

func (r *Router) route(tbl *table, addr string, test, isTLS bool, hosts []string, a *app) {
	lr := tbl.listeners[addr]
	if lr == nil {
		lr = &listenerRoutes{addr: addr, test: test, tls: isTLS, exact: map[string]*hostRoutes{}}
		tbl.listeners[addr] = lr
	}
	if a.prefix != "/" {
		lr.paths = true
	}
	for _, h := range hosts {
		var hr *hostRoutes
		switch {
		case h == "*":
			if lr.any == nil {
				lr.any = &hostRoutes{}
			}
			hr = lr.any
		case strings.HasPrefix(h, "*."):
			for _, w := range lr.wild {
				if w.suffix == h[1:] {
					hr = w.routes
				}
			}
			if hr == nil {
				hr = &hostRoutes{}
				lr.wild = append(lr.wild, wildRoute{suffix: h[1:], routes: hr})
			}
		default:
			if hr = lr.exact[h]; hr == nil {
				hr = &hostRoutes{}
				lr.exact[h] = hr
			}
		}
		if a.prefix == "/" {
			hr.root = a
		} else {
			hr.prefixed = append(hr.prefixed, prefixRoute{prefix: a.prefix, app: a})
		}
	}
}

// all lists every host's routes of the listener.
func (l *listenerRoutes) all() []*hostRoutes {
	var out []*hostRoutes
	for _, h := range l.exact {
		out = append(out, h)
	}
	for _, w := range l.wild {
		out = append(out, w.routes)
	}
	if l.any != nil {
		out = append(out, l.any)
	}
	return out
}

// Timeouts of the listeners' connections; variables so that tests can shorten them.
var (
	idleTimeout = 120 * time.Second
	headTimeout = 30 * time.Second
)

// Server-side limits of the listeners.
const (
	bodyTimeout      = time.Hour
	maxHeaderBytes   = 16 << 10 // the request line and headers must fit
	streamBodiesOver = 64 << 10 // smaller request bodies are read before forwarding
)

func (r *Router) serve(l *listener, ln net.Listener) {
	h := &handler{r: r, addr: l.addr}
	l.srv = &fasthttp.Server{
		Handler:                      h.serve,
		ErrorHandler:                 badRequest,
		Logger:                       fastLogger{r.log},
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		// Bodies larger than this are streamed to the upstream as they arrive.
		StreamRequestBody:  true,
		MaxRequestBodySize: streamBodiesOver,
		ReadBufferSize:     maxHeaderBytes,
		IdleTimeout:        idleTimeout,
		// A request head must arrive within headTimeout; its body then has
		// bodyTimeout, so that slow clients cannot hold connections forever
		// while long uploads still pass.
		ReadTimeout: headTimeout,
		HeaderReceived: func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
			if cl := h.ContentLength(); cl > 0 || cl == -1 {
				return fasthttp.RequestConfig{ReadTimeout: bodyTimeout}
			}
			// No body: nothing more is read before the next request's idle
			// deadline, and a deadline not moved is a runtime timer not moved.
			return fasthttp.RequestConfig{}
		},
		CloseOnShutdown: true,
		// Upgraded connections belong to the router, which closes them itself
		// (a drain deadline must be able to); otherwise Close on them is a no-op.
		KeepHijackedConns: true,
	}
	if l.tls {
		l.front = newTLSFront(r, l, ln)
		ln = l.front.h1
		r.wg.Go(l.front.run)
	} else if l.edge {
		// Challenges and redirects are answered by the goroutine server.
		ln = guardListener{ln}
	} else if ll := r.attachLoop(l.addr, ln); ll != nil {
		l.loop = ll
		ln = ll.handoff // handed-over connections come wrapped in their guard
	} else {
		ln = guardListener{ln}
	}
	l.ln = ln
	r.listeners[l.addr] = l
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := l.srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
			r.log.Error("listener stopped", "addr", l.addr, "err", err)
		}
	}()
	r.log.Info("listening", "addr", l.addr, "tls", l.tls)
}

// attachLoop has the event loops accept on a plain listener; nil means the
// fasthttp server accepts on it itself.
func (r *Router) attachLoop(addr string, ln net.Listener) *loopListener {
	if r.loops == nil && r.loopsErr == nil {
		r.loops, r.loopsErr = newLoopEngine(r)
		if r.loopsErr != nil {
			r.log.Warn("event loops unavailable; listeners use the goroutine server", "err", r.loopsErr)
		}
	}
	if r.loops == nil {
		return nil
	}
	ll, err := r.loops.attach(addr, ln, newHandoffListener(ln.Addr()))
	if err != nil {
		r.log.Warn("event loops cannot accept on listener; it uses the goroutine server", "addr", addr, "err", err)
		return nil
	}
	return ll
}

// badRequest answers requests the server could not parse.
// The guard's verdict, when it has one, says best what was wrong; the parser's
// own message quotes the raw request, which is not echoed back.
func badRequest(ctx *fasthttp.RequestCtx, err error) {
	code, msg := http.StatusBadRequest, "malformed request"
	var small *fasthttp.ErrSmallBuffer
	var nerr net.Error
	if errors.As(err, &small) {
		code, msg = http.StatusRequestHeaderFieldsTooLarge, "request headers are larger than the limit"
	} else if errors.As(err, &nerr) && nerr.Timeout() {
		code, msg = http.StatusRequestTimeout, fmt.Sprintf("the request did not arrive within %s", headTimeout)
	} else if g, ok := ctx.Conn().(*guardConn); ok {
		if v, ok := g.last(); ok && v.refuse != "" {
			code, msg = v.code, v.refuse
		}
	}
	ctx.SetConnectionClose()
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.SetStatusCode(code)
	ctx.SetBodyString("bluegreen: " + msg + "\n")
}

type fastLogger struct{ log *slog.Logger }

func (l fastLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}

// shutdownListener stops accepting on a listener the table no longer names and
// lets its requests finish.
func (r *Router) shutdownListener(l *listener) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		ctx, cancel := context.WithTimeout(r.ctx, 5*time.Minute)
		defer cancel()
		l.stop(ctx)
	}()
}

// Shutdown stops accepting requests, waits for those in flight until ctx ends,
// then closes what remains (upgraded connections included).
func (r *Router) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	// Held requests are answered now rather than at their max wait.
	r.gates.stop()
	listeners := make([]*listener, 0, len(r.listeners))
	for _, l := range r.listeners {
		listeners = append(listeners, l)
	}
	admin := r.admin
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, l := range listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.stop(ctx)
		}()
	}
	if admin != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := admin.Shutdown(ctx); err != nil {
				admin.Close()
			}
		}()
	}
	wg.Wait()
	// Upgraded connections are the router's own, not the servers': give them
	// what is left of ctx too, then close what remains.
	r.mu.Lock()
	targets := append([]*target(nil), r.retiring...)
	for _, t := range r.targets {
		targets = append(targets, t)
	}
	r.mu.Unlock()
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for open := true; open; {
		open = false
		for _, t := range targets {
			open = open || t.stats.upgraded.Load() > 0
		}
		if open {
			select {
			case <-ctx.Done():
				open = false
			case <-tick.C:
			}
		}
	}
	for _, t := range targets {
		t.closeAll()
		t.retire()
	}
	r.mu.Lock()
	if r.loops != nil {
		r.loops.stop()
	}
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	if r.access != nil {
		r.access.flush()
	}
	return ctx.Err()
}

// ListenerAddrs returns the addresses the router is listening on.
func (r *Router) ListenerAddrs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return sortedKeys(r.listeners)
}

// renamed is the targets a new table would drop under their app's name
// while naming the same fleet, revision and address under another app:
// an app renamed in the router (one of one service becoming a stack's
// public route, or back). A request that picked such a target from the
// table before would otherwise find it removed and fail, and a drain of
// the fleet under its new name would not see the work it carries.
type renamed map[string][]string // "fleet/revision/addr" → keys of r.targets

// renamedTargets finds the targets that cfg drops whose fleet, revision
// and address it names under another app. changed, when not nil, names the
// only apps whose targets can change (a patch), and only theirs are looked at.
func (r *Router) renamedTargets(cfg *Config, changed map[string]bool) renamed {
	kept := map[string]bool{}
	for name, ac := range cfg.Apps {
		if changed != nil && !changed[name] {
			continue
		}
		forEachTarget(name, ac, func(_, key string) { kept[key] = true })
	}
	out := renamed{}
	drop := func(key string) {
		if t := r.targets[key]; t != nil && !kept[key] {
			suffix := strings.TrimPrefix(key, t.appName()+"/")
			out[suffix] = append(out[suffix], key)
		}
	}
	if changed == nil {
		for key := range r.targets {
			drop(key)
		}
	} else {
		old := r.table.Load().cfg
		for name := range changed {
			forEachTarget(name, old.Apps[name], func(_, key string) { drop(key) })
		}
	}
	for _, keys := range out {
		sort.Strings(keys)
	}
	return out
}

// take hands out a dropped target's key for fleet/revision/addr, once.
func (rn renamed) take(suffix string) string {
	keys := rn[suffix]
	if len(keys) == 0 {
		return ""
	}
	rn[suffix] = keys[1:]
	return keys[0]
}
