// Package notify sends outbound webhooks on the events of deployments:
// started, waiting for a person, promoted, rolling back and why, rolled
// back, live, succeeded, failed. Destinations come from each revision's
// spec (notifications:) and from the server's own list.
//
// The notifier follows the store's event log, as any reader of the API
// does: the engine never waits for it, and a receiver that is down slows
// nothing. Each destination has a bounded queue, sent in log order, one
// notification at a time, retried with backoff; what cannot be delivered
// within the stated limits (a count of waiting notifications and an age)
// is dropped, and the drop is recorded as an event and logged. Where the
// log was read up to, and the last notification delivered to each
// destination, are kept in the store, so notifications still waiting when
// the server stops are sent after it starts again, and none twice.
package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"bluegreen/internal/params"
	"bluegreen/internal/spec"
	"bluegreen/internal/store"
)

// Defaults of Options.
const (
	DefaultQueueLimit = 100
	DefaultMaxAge     = time.Hour
	DefaultRetryBase  = time.Second
	DefaultRetryMax   = time.Minute
	DefaultTimeout    = 10 * time.Second
)

// Options configure a Notifier.
type Options struct {
	Store  *store.Store
	Params *params.Store
	// Defaults receive the notifications of every app: the server's own
	// list. Their secret_param and url_param are read at their latest
	// versions.
	Defaults []spec.Notification
	// Policy says which addresses may be sent to.
	Policy Policy
	// QueueLimit bounds the notifications waiting for one destination;
	// MaxAge is how long after its event a notification may still be
	// delivered. What goes past either is dropped and reported.
	QueueLimit int
	MaxAge     time.Duration
	// RetryBase and RetryMax bound the wait between attempts; Timeout
	// bounds one attempt.
	RetryBase time.Duration
	RetryMax  time.Duration
	Timeout   time.Duration
	Logger    *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Notifier follows the event log and sends notifications.
type Notifier struct {
	o      Options
	log    *slog.Logger
	client *http.Client
	// defaults are the server's destinations.
	defaults []destination

	mu     sync.Mutex
	queues map[string]*queue
	pos    int64 // the log is dispatched through this seq
	// persisted is what the store holds: the delivered mark of each
	// destination, and the resume point with when it was written.
	persisted     map[string]int64
	resume        int64
	resumeWritten time.Time
	specs         map[string][]destination // by "app/generation"

	persistMu sync.Mutex // one write of the state at a time, in order
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// New checks the options and returns a notifier that does nothing until
// Start.
func New(o Options) (*Notifier, error) {
	if o.Store == nil || o.Params == nil {
		return nil, errors.New("notify: no store or params")
	}
	if o.QueueLimit <= 0 {
		o.QueueLimit = DefaultQueueLimit
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.RetryBase <= 0 {
		o.RetryBase = DefaultRetryBase
	}
	if o.RetryMax <= 0 {
		o.RetryMax = DefaultRetryMax
	}
	o.RetryBase = min(o.RetryBase, o.RetryMax)
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	n := &Notifier{o: o, log: o.Logger, queues: map[string]*queue{}, persisted: map[string]int64{}, specs: map[string][]destination{}}
	for i, d := range o.Defaults {
		n.defaults = append(n.defaults, newDestination("", i, 0, d, nil))
	}
	dialer := &net.Dialer{Timeout: o.Timeout, Control: o.Policy.control}
	n.client = &http.Client{
		Timeout: o.Timeout,
		Transport: &http.Transport{
			// No proxy from the environment: the policy judges the
			// address dialled, which must be the receiver's.
			Proxy:               nil,
			DialContext:         dialer.DialContext,
			TLSHandshakeTimeout: o.Timeout,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		},
		// A redirect could lead anywhere, past the policy's judgement of
		// the URL people see: it is an answer like any other non-2xx.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return n, nil
}

// Start reads where the notifier stood and starts following the log. On
// a store that never had a notifier, it starts at the end of the log: what
// happened before is not announced.
func (n *Notifier) Start(ctx context.Context) error {
	state, err := n.o.Store.MetaPrefix(ctx, "notify.")
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	resume, ok := int64(0), false
	if v, found := state[metaResume]; found {
		resume, err = strconv.ParseInt(string(v), 10, 64)
		ok = err == nil
	}
	if !ok {
		if resume, err = n.o.Store.LastEventSeq(ctx); err != nil {
			return fmt.Errorf("notify: %w", err)
		}
	}
	for k, v := range state {
		if key, found := cutPrefix(k, metaDelivered); found {
			if seq, err := strconv.ParseInt(string(v), 10, 64); err == nil {
				n.persisted[key] = seq
			}
		}
	}
	n.pos = resume
	n.ctx, n.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if !ok {
		n.persist(ctx, true)
	} else {
		n.resume = resume
	}
	n.wg.Add(1)
	go n.follow()
	return nil
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return "", false
}

// Close stops sending and writes where the notifier stands. What still
// waits is sent by the next Start on the same store.
func (n *Notifier) Close() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.persist(ctx, true)
}

// follow dispatches each new event of the log to the queues of the
// destinations that want it.
func (n *Notifier) follow() {
	defer n.wg.Done()
	ctx := n.ctx
	for ctx.Err() == nil {
		ch := n.o.Store.EventsAppended()
		n.mu.Lock()
		pos := n.pos
		n.mu.Unlock()
		evs, err := n.o.Store.ListEvents(ctx, store.EventFilter{AfterSeq: pos, Limit: 500})
		if err == nil {
			for _, e := range evs {
				if err = n.dispatch(ctx, e); err != nil {
					break
				}
				n.mu.Lock()
				n.pos = e.Seq
				n.mu.Unlock()
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				n.log.Error("reading the event log for notifications; trying again", "err", err)
			}
			wait(ctx, time.Second)
			continue
		}
		n.persist(ctx, false)
		if len(evs) > 0 {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
}

// wait sleeps d or until ctx ends.
func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// dispatch queues the notifications e makes, for each destination that
// wants them.
func (n *Notifier) dispatch(ctx context.Context, e store.Event) error {
	if e.DeploymentID == "" || len(eventsOf(e, true)) == 0 {
		return nil
	}
	d, err := n.o.Store.GetDeployment(ctx, e.DeploymentID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // pruned since
	}
	if err != nil {
		return err
	}
	dests, err := n.destinations(ctx, d)
	if err != nil {
		return err
	}
	for sub, name := range eventsOf(e, d.FromGeneration == 0) {
		p := payloadOf(name, e, d)
		for _, dest := range dests {
			if dest.n.Wants(name) {
				n.enqueue(dest, item{dest: dest, payload: p, sub: sub})
			}
		}
	}
	return nil
}

// destinations are the server's and those of the spec of the revision d
// deploys.
func (n *Notifier) destinations(ctx context.Context, d store.Deployment) ([]destination, error) {
	k := fmt.Sprintf("%s/%d", d.App, d.ToGeneration)
	n.mu.Lock()
	own, ok := n.specs[k]
	n.mu.Unlock()
	if !ok {
		rev, err := n.o.Store.GetRevision(ctx, d.App, d.ToGeneration)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			s, err := spec.Parse(rev.Spec, spec.FileName)
			if err != nil {
				n.log.Warn("reading a revision's notifications", "app", d.App, "revision", d.ToGeneration, "err", err)
			}
			if s != nil {
				for i, dn := range s.Notifications {
					own = append(own, newDestination(d.App, i, rev.Generation, dn, rev.Params))
				}
			}
		}
		n.mu.Lock()
		if len(n.specs) >= 256 {
			n.specs = map[string][]destination{} // a cache, not a record
		}
		n.specs[k] = own
		n.mu.Unlock()
	}
	return append(append([]destination(nil), n.defaults...), own...), nil
}

// enqueue adds a notification to its destination's queue, starting the
// queue's sender on first use.
func (n *Notifier) enqueue(dest destination, it item) {
	n.mu.Lock()
	defer n.mu.Unlock()
	q := n.queues[dest.key]
	if q == nil {
		q = newQueue(dest.key, dest.label(), n.o.QueueLimit, n.persisted[dest.key])
		n.queues[dest.key] = q
		n.wg.Add(1)
		go n.send(q)
	}
	if it.mark() <= q.delivered {
		return // delivered (or dropped) before a restart
	}
	q.push(it)
}

// destination is one place notifications go, as one spec (or the
// server's list) names it.
type destination struct {
	key      string // the same for the same place in every revision of an app
	scope    string // the app whose spec names it; "" for the server's
	index    int    // its place in its list
	revision int64  // the revision whose spec named it (0: the server's)
	n        spec.Notification
	pins     map[string]int64 // param versions (nil: the latest)
}

func newDestination(scope string, index int, revision int64, dn spec.Notification, pins map[string]int64) destination {
	h := sha256.Sum256([]byte(scope + "\x00" + dn.URL + "\x00" + dn.URLParam + "\x00" + dn.Format + "\x00" + dn.SecretParam))
	return destination{key: hex.EncodeToString(h[:8]), scope: scope, index: index, revision: revision, n: dn, pins: pins}
}

// jitter spreads the retries of destinations that failed together.
var jitter = rand.Float64
