package auth

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Defaults of a Limiter: ten failures at once, then one every six seconds
// (ten a minute) per address.
const (
	DefaultFailureBurst = 10
	DefaultFailureEvery = 6 * time.Second
	// maxAddresses bounds the addresses a Limiter remembers; past it,
	// addresses it has not seen share one bucket, so that many addresses
	// cost no more memory and still no more guesses.
	maxAddresses = 10000
)

// Limiter limits failed authentications per remote address (the dashboard's
// login form and bearer tokens on the API share one): each address has a
// bucket of DefaultFailureBurst tries that a failure empties by one and time
// refills at one per DefaultFailureEvery. An address with an empty bucket is
// refused before its credential is even looked at. A secret has 256 random
// bits, so guessing one is hopeless anyway; the limit keeps a guesser from
// costing the server work and from flooding its log.
type Limiter struct {
	now   func() time.Time
	burst float64
	every time.Duration

	mu     sync.Mutex
	byAddr map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

// NewLimiter returns a limiter of burst failures at once, then one every
// every (DefaultFailureBurst and DefaultFailureEvery when zero); now is the
// clock (time.Now when nil).
func NewLimiter(burst int, every time.Duration, now func() time.Time) *Limiter {
	if burst <= 0 {
		burst = DefaultFailureBurst
	}
	if every <= 0 {
		every = DefaultFailureEvery
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{now: now, burst: float64(burst), every: every, byAddr: map[string]*bucket{}}
}

// overflowKey is the bucket shared by addresses past maxAddresses.
const overflowKey = "(others)"

// RemoteKey is the address a request is limited by: the peer's IP, or
// its /64 for IPv6, where one host often has a whole prefix. Requests that
// reach the server through a proxy share the proxy's address.
func RemoteKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// refill brings b up to date and returns it.
func (l *Limiter) refill(b *bucket, now time.Time) *bucket {
	if el := now.Sub(b.at); el > 0 {
		b.tokens = min(l.burst, b.tokens+float64(el)/float64(l.every))
		b.at = now
	}
	return b
}

// get returns key's bucket, up to date, or nil when it has none (a full
// one). With create it makes one, sweeping full buckets out first when the
// map is at its bound.
func (l *Limiter) get(key string, now time.Time, create bool) *bucket {
	if b := l.byAddr[key]; b != nil {
		return l.refill(b, now)
	}
	if !create {
		if b := l.byAddr[overflowKey]; b != nil && len(l.byAddr) >= maxAddresses {
			return l.refill(b, now)
		}
		return nil
	}
	if len(l.byAddr) >= maxAddresses {
		for k, b := range l.byAddr {
			if l.refill(b, now).tokens >= l.burst {
				delete(l.byAddr, k)
			}
		}
	}
	if len(l.byAddr) >= maxAddresses {
		key = overflowKey
		if b := l.byAddr[key]; b != nil {
			return l.refill(b, now)
		}
	}
	b := &bucket{tokens: l.burst, at: now}
	l.byAddr[key] = b
	return b
}

// Allow reports whether key may try to authenticate now and, when it may
// not, how long until it may.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.get(key, l.now(), false)
	if b == nil || b.tokens >= 1 {
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) * float64(l.every))
}

// Fail records a failed attempt of key. limited is true when this failure
// used its last try: from now on it is refused for a while, which is worth
// one line in the log (the attempts refused after it are not).
func (l *Limiter) Fail(key string) (limited bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.get(key, l.now(), true)
	b.tokens = max(0, b.tokens-1)
	return b.tokens < 1
}

// RetryAfter formats a wait for the Retry-After header: whole seconds,
// rounded up, at least one.
func RetryAfter(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}
