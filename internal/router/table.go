package router

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"math/rand/v2"
	"net"
	"strings"
	"sync/atomic"
	"time"
)

// table is one immutable routing table. Requests load it once and keep it, so a
// request in flight finishes where it started whatever is applied meanwhile.
type table struct {
	gen       uint64
	cfg       *Config
	listeners map[string]*listenerRoutes
	apps      map[string]*app
	reqID     string
	trustXF   bool
}

// listenerRoutes maps the Host and path of a request on one listener to an
// app.
type listenerRoutes struct {
	addr  string
	test  bool
	tls   bool
	exact map[string]*hostRoutes
	wild  []wildRoute // longest suffix first
	any   *hostRoutes
	// paths: some app on the listener answers a path prefix other than
	// "/", so a lookup compares paths; otherwise the host alone decides.
	paths bool
	// edge is set on the plain listeners apps name in tls.http: they answer
	// ACME challenges and may redirect to HTTPS.
	edge *edgeRoutes
}

// hostRoutes are the apps one host pattern reaches on a listener, by path.
type hostRoutes struct {
	root     *app          // the app of "/", if any
	prefixed []prefixRoute // longest prefix first
}

type prefixRoute struct {
	prefix string // "/api": matches /api, /api/… and /api?…
	app    *app
}

type wildRoute struct {
	suffix string // ".example.com"
	routes *hostRoutes
}

// match returns the app of the longest prefix of target among h's, and
// that prefix's length (0 for the root app); nil when none matches.
func (h *hostRoutes) match(target string) (*app, int) {
	for _, p := range h.prefixed {
		if hasPathPrefix(target, p.prefix) {
			return p.app, len(p.prefix)
		}
	}
	return h.root, 0
}

// hasPathPrefix says whether the request target (a path, maybe with a
// query) is prefix or lies under it: /api matches /api, /api/x and /api?q,
// not /apix. Paths are compared as sent, byte for byte.
func hasPathPrefix(target, prefix string) bool {
	if !strings.HasPrefix(target, prefix) {
		return false
	}
	if len(target) == len(prefix) {
		return true
	}
	c := target[len(prefix)]
	return c == '/' || c == '?'
}

// lookup finds the app of a request by its host and target: the longest
// path prefix among the apps whose hosts match, and between equal prefixes
// the most specific host (an exact name, then the longest wildcard, then *).
func (l *listenerRoutes) lookup(host, target string) *app {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(host, ".")
	exact, ok := l.exact[host]
	if !ok {
		exact = l.exact[strings.ToLower(host)]
	}
	if !l.paths {
		// Every app answers "/": the most specific host wins.
		if exact != nil {
			return exact.root
		}
		if len(l.wild) > 0 {
			lh := strings.ToLower(host)
			for _, w := range l.wild {
				if strings.HasSuffix(lh, w.suffix) && len(lh) > len(w.suffix) {
					return w.routes.root
				}
			}
		}
		if l.any != nil {
			return l.any.root
		}
		return nil
	}
	var best *app
	bestLen := -1
	consider := func(h *hostRoutes) {
		if h == nil {
			return
		}
		if a, n := h.match(target); a != nil && n > bestLen {
			best, bestLen = a, n
		}
	}
	consider(exact)
	if len(l.wild) > 0 {
		lh := strings.ToLower(host)
		for _, w := range l.wild {
			if strings.HasSuffix(lh, w.suffix) && len(lh) > len(w.suffix) {
				consider(w.routes)
			}
		}
	}
	consider(l.any)
	return best
}

// upstreamTarget is the request target as the app's fleets get it: without
// the app's path prefix when the app strips it (/api/items → /items,
// /api → /, /api?q → /?q). target is one the app's prefix matched.
func (a *app) upstreamTarget(target []byte) []byte {
	if !a.strip || len(a.prefix) <= 1 || len(target) < len(a.prefix) {
		return target
	}
	rest := target[len(a.prefix):]
	switch {
	case len(rest) == 0:
		return rootTarget
	case rest[0] == '/':
		return rest
	}
	return append([]byte{'/'}, rest...) // a query right after the prefix
}

var rootTarget = []byte("/")

type app struct {
	name string
	// prefix is the path prefix the app answers ("/" for every path) and
	// strip says whether it is removed before the request is sent on.
	prefix    string
	strip     bool
	fleets    []*fleet
	byName    map[string]*fleet
	byPreview map[string]*fleet // the preview header's names: roles, else fleet names
	testFleet *fleet
	cookie    string // empty unless sticky
	preview   string
	// previewSecret, when set, must come with the fleet's name in the preview
	// header; previewSum is its SHA-256, compared in constant time.
	previewSecret string
	previewSum    [32]byte
	rr            *atomic.Uint64
	scheds        []atomic.Pointer[[]uint8] // indexed by eligible-fleet mask (+ a bit for equal shares)
	// The operator's settings (edgeops.go): when off, each costs a
	// request one comparison with nil or zero.
	access  *accessLog // nil unless the app's requests are logged
	maxBody int64
	timeout time.Duration
	// gate holds the app's production requests while pause is set; maint
	// answers them with a page instead (see gate.go).
	gate  *gate
	pause *pauseRule
	maint *maintPage
}

type fleet struct {
	app      *app
	name     string
	revision string
	weight   int
	fenced   bool
	targets  []*target
	fencedT  []bool
	stats    *metrics
	// loopReady: every target is an IP address the event loop can connect to
	// without a name lookup.
	loopReady bool
}

// usableTarget reports whether target i may take a new request.
func (f *fleet) usableTarget(i int, now int64) bool {
	return !f.fencedT[i] && f.targets[i].usable(now)
}

// takes reports whether target i takes new requests: its fleet is not fenced,
// and it is usable itself.
func (f *fleet) takes(i int, now int64) bool {
	return !f.fenced && f.usableTarget(i, now)
}

func (f *fleet) available(now int64) bool {
	if f.fenced {
		return false
	}
	for i := range f.targets {
		if f.usableTarget(i, now) {
			return true
		}
	}
	return false
}

// pickTarget balances with the power of two choices on in-flight requests.
func (f *fleet) pickTarget(exclude *target, now int64) *target {
	n := 0
	for i, t := range f.targets {
		if t != exclude && f.usableTarget(i, now) {
			n++
		}
	}
	switch n {
	case 0:
		return nil
	case 1:
		return f.nthUsable(0, exclude, now)
	}
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	a, b := f.nthUsable(i, exclude, now), f.nthUsable(j, exclude, now)
	if b.stats.inflight.Load() < a.stats.inflight.Load() {
		return b
	}
	return a
}

func (f *fleet) nthUsable(k int, exclude *target, now int64) *target {
	for i, t := range f.targets {
		if t != exclude && f.usableTarget(i, now) {
			if k == 0 {
				return t
			}
			k--
		}
	}
	return nil
}

// pickFleet chooses a fleet for a request with no pin, by weight among the fleets
// that can serve. A weighted fleet with no healthy target gives its share to the
// others; when no weighted fleet can serve, any healthy unfenced fleet takes the
// traffic in equal shares (blue kept warm at weight 0 rescues a broken green).
func (a *app) pickFleet(now int64) *fleet {
	var mask, fallback int
	for i, f := range a.fleets {
		if !f.available(now) {
			continue
		}
		fallback |= 1 << i
		if f.weight > 0 {
			mask |= 1 << i
		}
	}
	equal := false
	if mask == 0 {
		if fallback == 0 {
			return nil
		}
		mask, equal = fallback, true
	}
	sched := a.schedule(mask, equal)
	n := a.rr.Add(1) - 1
	return a.fleets[sched[n%uint64(len(sched))]]
}

func (a *app) schedule(mask int, equal bool) []uint8 {
	key := mask
	if equal {
		key |= 1 << len(a.fleets)
	}
	if s := a.scheds[key].Load(); s != nil {
		return *s
	}
	weights := make([]int, len(a.fleets))
	for i, f := range a.fleets {
		if mask&(1<<i) != 0 {
			weights[i] = f.weight
			if equal {
				weights[i] = 1
			}
		}
	}
	s := smoothSchedule(weights)
	a.scheds[key].Store(&s)
	return s
}

// smoothSchedule lays out one period of smooth weighted round robin (the nginx
// algorithm): each index appears in proportion to its weight, interleaved rather
// than bunched. The period is the weight total divided by the weights' common divisor.
func smoothSchedule(weights []int) []uint8 {
	g, total := 0, 0
	for _, w := range weights {
		g = gcd(g, w)
		total += w
	}
	if total == 0 {
		return nil
	}
	period := total / g
	current := make([]int, len(weights))
	out := make([]uint8, 0, period)
	for range period {
		best := -1
		for i, w := range weights {
			if w == 0 {
				continue
			}
			current[i] += w
			if best < 0 || current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		out = append(out, uint8(best))
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// routeProduction decides the fleet of a production request: preview header, then
// the sticky pin, then the weights. preview and pinned are the values of the
// app's preview header and sticky cookie in the request. It returns the fleet
// and whether to (re)pin.
func (a *app) routeProduction(preview, pinned []byte, now int64) (f *fleet, pin bool) {
	if a.preview != "" {
		if name := b2s(a.previewFleet(preview)); name != "" {
			if f := a.byPreview[name]; f != nil && f.available(now) {
				return f, false
			}
		}
	}
	if a.cookie != "" {
		if name := b2s(pinned); name != "" {
			if f := a.byName[name]; f != nil && f.weight > 0 && f.available(now) {
				return f, false
			}
		}
		f := a.pickFleet(now)
		return f, f != nil
	}
	return a.pickFleet(now), false
}

// previewFleet returns the fleet name a preview header value asks for, or nil.
// With a preview secret the value must be "FLEET; secret=SECRET"; a missing or
// wrong secret makes the header count as absent. The secret is compared by its
// SHA-256 in constant time, so that neither its bytes nor its length leak
// through timing.
func (a *app) previewFleet(v []byte) []byte {
	if a.previewSecret == "" {
		return v
	}
	name, rest, ok := bytes.Cut(v, []byte(";"))
	if !ok {
		return nil
	}
	given, ok := bytes.CutPrefix(bytes.TrimLeft(rest, " \t"), []byte("secret="))
	if !ok {
		return nil
	}
	sum := sha256.Sum256(bytes.TrimRight(given, " \t"))
	if subtle.ConstantTimeCompare(sum[:], a.previewSum[:]) != 1 {
		return nil
	}
	return bytes.TrimRight(name, " \t")
}

// nanotime is the clock of suspicion deadlines.
func nanotime() int64 { return time.Now().UnixNano() }
