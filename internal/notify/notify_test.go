package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"bluegreen/internal/audit"
	"bluegreen/internal/params"
	"bluegreen/internal/spec"
	"bluegreen/internal/store"
	"bluegreen/internal/testwait"
)

const hookSecret = "the-receivers-shared-secret"

// receiver is a real HTTP server on 127.0.0.1 that records what it is
// sent, checking each signature as a receiver would.
type receiver struct {
	t      *testing.T
	addr   string
	secret []byte
	mu     sync.Mutex
	srv    *http.Server
	got    []received
	bad    []string // what failed verification
	status int      // the answer; 0 is 204
}

type received struct {
	path     string
	event    string
	delivery string
	payload  Payload
	text     string // a Slack body's
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, secret: []byte(hookSecret)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.down)
	return r
}

func (r *receiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.handle)}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// down closes the listener: connections are refused until up.
func (r *receiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// up listens again on the same address.
func (r *receiver) up() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("listening again on %s: %v", r.addr, err)
	}
	r.serve(ln)
}

func (r *receiver) url(path string) string { return "http://" + r.addr + path }

func (r *receiver) handle(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	rec := received{path: req.URL.Path, event: req.Header.Get(HeaderEvent), delivery: req.Header.Get(HeaderDelivery)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if sig := req.Header.Get(HeaderSignature); sig != "" || strings.HasPrefix(req.URL.Path, "/signed") {
		if err := Verify(r.secret, sig, req.Header.Get(HeaderTimestamp), body, time.Now(), DefaultTolerance); err != nil {
			r.bad = append(r.bad, fmt.Sprintf("%s %s: %v", req.URL.Path, rec.event, err))
		}
	}
	if strings.HasPrefix(req.URL.Path, "/slack") {
		var s map[string]string
		if json.Unmarshal(body, &s) != nil || len(s) != 1 {
			r.bad = append(r.bad, "a Slack body that is not {text}: "+string(body))
		}
		rec.text = s["text"]
	} else if err := json.Unmarshal(body, &rec.payload); err != nil {
		r.bad = append(r.bad, "a body that is not JSON: "+string(body))
	}
	if r.status != 0 {
		if r.status/100 == 3 {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(r.status)
		return
	}
	r.got = append(r.got, rec)
	w.WriteHeader(http.StatusNoContent)
}

// events are the notification events received on path, in order.
func (r *receiver) events(path string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, g := range r.got {
		if g.path == path {
			out = append(out, g.event)
		}
	}
	return out
}

func (r *receiver) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *receiver) checkSignatures() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.bad {
		r.t.Error(b)
	}
}

// fixture is a real store and parameter store, with an app whose events
// the tests write as the engine would.
type fixture struct {
	t   *testing.T
	dir string
	st  *store.Store
	ps  *params.Store
}

func newFixture(t *testing.T) *fixture {
	dir := t.TempDir()
	st, err := store.Open(context.Background(), dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ps, err := params.Open(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Put(context.Background(), "/shop/HOOK_SECRET", params.TypeSecure, hookSecret, params.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, dir: dir, st: st, ps: ps}
}

// revision stores a revision of shop whose spec has these notifications.
func (f *fixture) revision(notifications string) store.Revision {
	f.t.Helper()
	raw := "app: shop\nprocess:\n  command: [./shop]\nparams: [/shop/HOOK_SECRET]\nnotifications:\n" + notifications
	if _, err := spec.Parse([]byte(raw), "bluegreen.yaml"); err != nil {
		f.t.Fatal(err)
	}
	pins, err := f.ps.Pin(context.Background(), []string{"/shop/HOOK_SECRET"})
	if err != nil {
		f.t.Fatal(err)
	}
	r, err := f.st.CreateRevision(context.Background(), store.Revision{App: "shop", Source: "bundle:test", Spec: []byte(raw), Params: pins})
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// deployment starts a deployment of rev over from (0: none).
func (f *fixture) deployment(from int64, rev store.Revision) store.Deployment {
	f.t.Helper()
	d, err := f.st.CreateDeployment(context.Background(), store.Deployment{App: "shop", FromGeneration: from, ToGeneration: rev.Generation,
		Phase: "Pending", Details: []byte(`{"kind":"deploy"}`)})
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

// event appends an event of d in phase.
func (f *fixture) event(d store.Deployment, kind, phase, message string, more map[string]any) store.Event {
	f.t.Helper()
	fields := map[string]any{"phase": phase}
	for k, v := range more {
		fields[k] = v
	}
	e, err := f.st.AppendEvent(context.Background(), store.Event{App: d.App, DeploymentID: d.ID, Kind: kind, Message: message, Fields: fields})
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

// end records the end of d, with its reason.
func (f *fixture) end(d store.Deployment, phase, outcome, reason string) {
	f.t.Helper()
	d, err := f.st.GetDeployment(context.Background(), d.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	d.Phase, d.Outcome, d.Reason = phase, outcome, reason
	if _, err := f.st.UpdateDeployment(context.Background(), d); err != nil {
		f.t.Fatal(err)
	}
}

// kinds are the log's events of these kinds, in order.
func (f *fixture) kinds(kinds ...string) []store.Event {
	evs, err := f.st.ListEvents(context.Background(), store.EventFilter{Limit: 10000})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []store.Event
	for _, e := range evs {
		if slices.Contains(kinds, e.Kind) {
			out = append(out, e)
		}
	}
	return out
}

// loopback lets notifications reach the test's receivers.
var loopback, _ = ParseAllow([]string{"127.0.0.0/8"})

func (f *fixture) notifier(o Options) *Notifier {
	f.t.Helper()
	o.Store, o.Params = f.st, f.ps
	if o.RetryMax == 0 {
		// Short waits so that a receiver back up is reached soon; nothing
		// here is timed.
		o.RetryBase, o.RetryMax = 5*time.Millisecond, 50*time.Millisecond
	}
	n, err := New(o)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(n.Close)
	return n
}

// A whole deployment that rolls back: every destination gets the events
// it chose, once each, in order, signed, in its format.
func TestNotificationsDeliveredInOrder(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t)
	n := f.notifier(Options{Policy: loopback, Defaults: []spec.Notification{
		{URL: r.url("/server"), Format: spec.NotifyJSON, Events: spec.NotificationEvents},
	}})
	_ = n
	rev := f.revision(fmt.Sprintf(`  - url: %s
    secret_param: /shop/HOOK_SECRET
    events: [started, promoted, rolling_back, rolled_back]
  - url: %s
    format: slack
    events: [rolled_back]
`, r.url("/signed"), r.url("/slack")))
	d := f.deployment(0, rev)
	actor := audit.Actor{Token: "ci", TokenID: "t-0011", Remote: "127.0.0.1"}
	ctx := audit.WithActor(context.Background(), actor)
	msg, by := audit.Record(ctx, "deploying revision 1", map[string]any{"from": 0, "to": 1, "kind": "deploy"})
	f.event(d, "deployment.created", "", msg, by)
	f.event(d, "phase", "Provisioning", "provisioning 1 instance", nil)
	f.event(d, "phase", "AwaitingApproval", "waiting for promote", nil)
	msg, by = audit.Record(ctx, "promote: approved", map[string]any{"request": "promote"})
	f.event(d, "request", "AwaitingApproval", msg, by)
	f.event(d, "check", "Shifting", "checks fail", nil)
	f.end(d, "RollingBack", "", "checks failed 2 times in a row: error_rate")
	f.event(d, "phase", "RollingBack", "rolling back: checks failed 2 times in a row: error_rate", nil)
	f.end(d, "RolledBack", store.OutcomeRolledBack, "checks failed 2 times in a row: error_rate")
	f.event(d, "phase", "RolledBack", "rolled back: green is stopped; nothing was live before it", nil)

	testwait.For(t, 30*time.Second, "every notification to arrive", func() bool {
		return len(r.events("/server")) >= 5 && len(r.events("/signed")) >= 4 && len(r.events("/slack")) >= 1
	})
	r.checkSignatures()
	for path, want := range map[string][]string{
		"/server": {"started", "awaiting_approval", "promoted", "rolling_back", "rolled_back"},
		"/signed": {"started", "promoted", "rolling_back", "rolled_back"},
		"/slack":  {"rolled_back"},
	} {
		if got := r.events(path); !slices.Equal(got, want) {
			t.Errorf("%s got %v, want %v", path, got, want)
		}
	}
	seen := map[string]bool{}
	var last int64
	for _, g := range r.all() {
		if seen[g.delivery] {
			t.Errorf("delivery %s arrived twice", g.delivery)
		}
		seen[g.delivery] = true
		switch g.path {
		case "/signed":
			if g.payload.Seq <= last {
				t.Errorf("out of order: %d after %d", g.payload.Seq, last)
			}
			last = g.payload.Seq
			if g.payload.App != "shop" || g.payload.DeploymentID != d.ID || g.payload.ToRevision != 1 {
				t.Errorf("payload %+v", g.payload)
			}
			if g.event == "promoted" && (g.payload.By == nil || *g.payload.By != actor) {
				t.Errorf("promoted by %+v, want %+v", g.payload.By, actor)
			}
			if g.event == "rolled_back" && (g.payload.Reason != "checks failed 2 times in a row: error_rate" || g.payload.Outcome != "rolled_back") {
				t.Errorf("rolled back without its reason: %+v", g.payload)
			}
		case "/slack":
			if !strings.HasPrefix(g.text, "shop: rolled back ("+d.ID+", revision 1): rolled back") || !strings.HasSuffix(g.text, "\nWhy: checks failed 2 times in a row: error_rate") {
				t.Errorf("Slack text %q", g.text)
			}
		}
	}
	if evs := f.kinds("notification.failing", "notification.dropped"); len(evs) > 0 {
		t.Errorf("notification trouble with a receiver that was up: %+v", evs)
	}
}

// While the receiver is down, notifications wait; when it is back they
// arrive in order, once, and the log says what happened.
func TestNotificationsWaitForTheReceiver(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t)
	r.down()
	f.notifier(Options{Policy: loopback})
	rev := f.revision(fmt.Sprintf("  - url: %s\n    secret_param: /shop/HOOK_SECRET\n", r.url("/signed")))
	d := f.deployment(0, rev)
	f.event(d, "deployment.created", "", "deploying revision 1", nil)
	testwait.For(t, 30*time.Second, "the failure to be recorded", func() bool { return len(f.kinds("notification.failing")) > 0 })
	f.end(d, "Succeeded", store.OutcomeSucceeded, "green is live")
	f.event(d, "phase", "Succeeded", "revision 1 is live", nil)
	fail := f.kinds("notification.failing")[0]
	if fail.App != "shop" || fail.DeploymentID != d.ID || !strings.Contains(fail.Message, "notifications to http://"+r.addr+"/… (notifications[0]) fail: ") {
		t.Errorf("failing event %+v", fail)
	}
	r.up()
	testwait.For(t, 30*time.Second, "the waiting notifications", func() bool { return len(r.events("/signed")) >= 3 })
	r.checkSignatures()
	if got, want := r.events("/signed"), []string{"started", "live", "succeeded"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	testwait.For(t, 30*time.Second, "the recovery to be recorded", func() bool { return len(f.kinds("notification.recovered")) == 1 })
	if evs := f.kinds("notification.failing"); len(evs) != 1 {
		t.Errorf("%d failing events for one outage", len(evs))
	}
}

// Notifications still waiting when the notifier stops are sent by the
// next one on the same store; those delivered before are not sent again.
func TestNotificationsSurviveARestart(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t)
	n := f.notifier(Options{Policy: loopback})
	rev := f.revision(fmt.Sprintf("  - url: %s\n    secret_param: /shop/HOOK_SECRET\n", r.url("/signed")))
	d := f.deployment(0, rev)
	f.event(d, "deployment.created", "", "deploying revision 1", nil)
	f.event(d, "phase", "AwaitingApproval", "waiting for promote", nil)
	testwait.For(t, 30*time.Second, "the first two", func() bool { return len(r.events("/signed")) == 2 })
	r.down()
	f.event(d, "request", "AwaitingApproval", "promote: approved", map[string]any{"request": "promote"})
	testwait.For(t, 30*time.Second, "the failure to be recorded", func() bool { return len(f.kinds("notification.failing")) > 0 })
	f.end(d, "Succeeded", store.OutcomeSucceeded, "green is live")
	f.event(d, "phase", "Succeeded", "revision 1 is live", nil)
	n.Close()

	r.up()
	f.notifier(Options{Policy: loopback})
	testwait.For(t, 30*time.Second, "what waited", func() bool { return len(r.events("/signed")) >= 5 })
	r.checkSignatures()
	if got, want := r.events("/signed"), []string{"started", "awaiting_approval", "promoted", "live", "succeeded"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// And after a third start, nothing again.
	f.event(d, "phase", "Failed", "a marker", nil)
	testwait.For(t, 30*time.Second, "the marker", func() bool { return len(r.events("/signed")) == 6 })
}

// Past the queue's bound the oldest waiting notifications are dropped,
// and the drop is recorded; the rest arrive in order.
func TestNotificationsDroppedPastTheLimit(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t)
	r.down()
	f.notifier(Options{Policy: loopback, QueueLimit: 2})
	rev := f.revision(fmt.Sprintf("  - url: %s\n", r.url("/plain")))
	d := f.deployment(0, rev)
	var seqs []int64
	for i := range 6 {
		seqs = append(seqs, f.event(d, "phase", "AwaitingApproval", fmt.Sprintf("waiting %d", i), nil).Seq)
	}
	count := func() int {
		total := 0
		for _, e := range f.kinds("notification.dropped") {
			total += int(e.Fields["count"].(float64))
		}
		return total
	}
	testwait.For(t, 30*time.Second, "the drops to be recorded", func() bool { return count() >= 4 })
	r.up()
	testwait.For(t, 30*time.Second, "the rest", func() bool { return len(r.events("/plain"))+count() == 6 })
	got := r.all()
	if len(got) > 2 || len(got) == 0 || got[len(got)-1].payload.Seq != seqs[5] {
		t.Fatalf("received %+v; want at most 2, the latest last", got)
	}
	drop := f.kinds("notification.dropped")[0]
	if drop.App != "shop" || !strings.Contains(drop.Message, "dropped: the receiver was not reached while 2 more recent notifications waited (--notify-queue)") {
		t.Errorf("drop event %+v", drop)
	}
}

// A notification not delivered within the stated age is dropped, and said.
func TestNotificationsDroppedWhenTooOld(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t)
	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	f.notifier(Options{Policy: loopback, Now: later})
	rev := f.revision(fmt.Sprintf("  - url: %s\n", r.url("/plain")))
	d := f.deployment(0, rev)
	f.event(d, "deployment.created", "", "deploying revision 1", nil)
	testwait.For(t, 30*time.Second, "the drop", func() bool { return len(f.kinds("notification.dropped")) == 1 })
	if e := f.kinds("notification.dropped")[0]; !strings.Contains(e.Message, "1 notification to http://"+r.addr+"/… (notifications[0]) dropped: not delivered within 1h0m0s of its event (--notify-max-age)") {
		t.Errorf("drop event: %s", e.Message)
	}
	if got := r.all(); len(got) != 0 {
		t.Errorf("a stale notification was sent: %+v", got)
	}
}

// By default only public addresses are sent to: a loopback receiver gets
// nothing, and the log says why at once.
func TestNotificationsToInternalAddressesRefused(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t)
	f.notifier(Options{})
	rev := f.revision(fmt.Sprintf("  - url: %s\n", r.url("/plain")))
	d := f.deployment(0, rev)
	f.event(d, "deployment.created", "", "deploying revision 1", nil)
	testwait.For(t, 30*time.Second, "the refusal", func() bool { return len(f.kinds("notification.dropped")) == 1 })
	if e := f.kinds("notification.dropped")[0]; !strings.Contains(e.Message, "127.0.0.1 is a loopback address, and the server's --notify-allow does not list it") {
		t.Errorf("drop event: %s", e.Message)
	}
	if got := r.all(); len(got) != 0 {
		t.Errorf("sent to a loopback address: %+v", got)
	}
}

// A redirect is not followed: it counts as a failed attempt.
func TestNotificationsDoNotFollowRedirects(t *testing.T) {
	f := newFixture(t)
	r := newReceiver(t)
	r.mu.Lock()
	r.status = http.StatusFound
	r.mu.Unlock()
	f.notifier(Options{Policy: loopback})
	rev := f.revision(fmt.Sprintf("  - url: %s\n", r.url("/plain")))
	d := f.deployment(0, rev)
	f.event(d, "deployment.created", "", "deploying revision 1", nil)
	testwait.For(t, 30*time.Second, "the failure", func() bool { return len(f.kinds("notification.failing")) == 1 })
	if e := f.kinds("notification.failing")[0]; !strings.Contains(e.Message, "answered 302 Found (redirects are not followed)") {
		t.Errorf("failing event: %s", e.Message)
	}
	if got := r.all(); len(got) != 0 {
		t.Errorf("a redirect was followed: %+v", got)
	}
}
