package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"bluegreen/internal/audit"
	"bluegreen/internal/spec"
	"bluegreen/internal/store"
)

func TestSignAndVerify(t *testing.T) {
	secret := []byte("s3cret-of-the-receiver")
	body := []byte(`{"event":"rolled_back"}`)
	now := time.Unix(1_800_000_000, 0)
	sig := Sign(secret, now.Unix(), body)
	// The documented recipe: HMAC-SHA256 of "TIMESTAMP.BODY", in hex.
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("1800000000." + string(body)))
	if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); sig != want {
		t.Fatalf("signature %q, want %q", sig, want)
	}
	ts := "1800000000"
	if err := Verify(secret, sig, ts, body, now.Add(time.Minute), DefaultTolerance); err != nil {
		t.Fatalf("a good signature: %v", err)
	}
	for name, c := range map[string]struct {
		secret    []byte
		sig, ts   string
		body      []byte
		now       time.Time
		wantIs    error
		wantMatch string
	}{
		"another body":     {secret, sig, ts, []byte(`{"event":"succeeded"}`), now, ErrBadSignature, ""},
		"another secret":   {[]byte("guess"), sig, ts, body, now, ErrBadSignature, ""},
		"another time":     {secret, sig, "1800000001", body, now, ErrBadSignature, ""},
		"replayed later":   {secret, sig, ts, body, now.Add(6 * time.Minute), ErrStale, ""},
		"from the future":  {secret, sig, ts, body, now.Add(-6 * time.Minute), ErrStale, ""},
		"no scheme":        {secret, strings.TrimPrefix(sig, "sha256="), ts, body, now, nil, "want sha256=HEX"},
		"not hex":          {secret, "sha256=zz", ts, body, now, ErrBadSignature, ""},
		"no timestamp":     {secret, sig, "", body, now, nil, "not a Unix time"},
		"short signature":  {secret, sig[:20], ts, body, now, ErrBadSignature, ""},
		"upper-case match": {secret, strings.ToUpper(sig), ts, body, now, nil, "want sha256=HEX"},
	} {
		err := Verify(c.secret, c.sig, c.ts, c.body, c.now, DefaultTolerance)
		if err == nil || (c.wantIs != nil && !errors.Is(err, c.wantIs)) || !strings.Contains(err.Error(), c.wantMatch) {
			t.Errorf("%s: got %v, want %v %q", name, err, c.wantIs, c.wantMatch)
		}
	}
}

func TestEventsOf(t *testing.T) {
	ev := func(kind, phase string, more map[string]any) store.Event {
		f := map[string]any{"phase": phase}
		for k, v := range more {
			f[k] = v
		}
		return store.Event{Kind: kind, Fields: f}
	}
	for _, c := range []struct {
		e     store.Event
		first bool
		want  []string
	}{
		{ev("deployment.created", "", nil), false, []string{"started"}},
		{ev("phase", "Provisioning", nil), false, nil},
		{ev("phase", "AwaitingApproval", nil), false, []string{"awaiting_approval"}},
		{ev("checks.inconclusive", "Shifting", nil), false, []string{"awaiting_approval"}},
		{ev("request", "Shifting", map[string]any{"request": "promote"}), false, []string{"promoted"}},
		{ev("request", "Shifting", map[string]any{"request": "abort"}), false, nil},
		{ev("traffic", "Shifting", nil), false, nil},
		{ev("check", "Baking", nil), false, nil},
		{ev("phase", "Retiring", nil), false, []string{"live"}},
		{ev("phase", "Succeeded", nil), false, []string{"succeeded"}},
		{ev("phase", "Succeeded", nil), true, []string{"live", "succeeded"}},
		{ev("phase", "RollingBack", nil), false, []string{"rolling_back"}},
		{ev("phase", "RolledBack", nil), false, []string{"rolled_back"}},
		{ev("phase", "Failed", nil), false, []string{"failed"}},
		{ev("notification.dropped", "", nil), false, nil},
	} {
		if got := eventsOf(c.e, c.first); !slices.Equal(got, c.want) {
			t.Errorf("%s %v (first %v): %v, want %v", c.e.Kind, c.e.Fields["phase"], c.first, got, c.want)
		}
	}
	// Every notification event is made by some event of the log.
	made := map[string]bool{}
	for _, k := range []string{"deployment.created", "checks.inconclusive"} {
		for _, n := range eventsOf(ev(k, "", nil), false) {
			made[n] = true
		}
	}
	for _, n := range eventsOf(ev("request", "", map[string]any{"request": "promote"}), false) {
		made[n] = true
	}
	for _, p := range []string{"AwaitingApproval", "Retiring", "Succeeded", "RollingBack", "RolledBack", "Failed"} {
		for _, n := range eventsOf(ev("phase", p, nil), true) {
			made[n] = true
		}
	}
	for _, n := range spec.NotificationEvents {
		if !made[n] {
			t.Errorf("no event of the log makes %s", n)
		}
	}
}

func TestBodies(t *testing.T) {
	at := time.Date(2026, 11, 22, 6, 45, 25, 0, time.UTC)
	e := store.Event{Seq: 42, Time: at, App: "shop", DeploymentID: "d-5f2c9a1b7e3d", Kind: "phase",
		Message: "rolled back to revision 6", Fields: map[string]any{"phase": "RolledBack"}}
	d := store.Deployment{ID: "d-5f2c9a1b7e3d", App: "shop", FromGeneration: 6, ToGeneration: 7,
		Reason: "checks failed 2 times in a row: error_rate", Details: []byte(`{"kind":"deploy"}`)}
	p := payloadOf(spec.NotifyRolledBack, e, d)
	raw, err := p.Body(spec.NotifyJSON)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"event": "rolled_back", "app": "shop", "deployment_id": "d-5f2c9a1b7e3d", "kind": "deploy",
		"from_revision": 6.0, "to_revision": 7.0, "phase": "RolledBack", "outcome": "rolled_back",
		"reason": "checks failed 2 times in a row: error_rate", "message": "rolled back to revision 6", "seq": 42.0,
		"time": "2026-11-22T06:45:25Z"}
	if len(got) != len(want) {
		t.Errorf("JSON body %s", raw)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("JSON body %s: %s = %v, want %v", raw, k, got[k], v)
		}
	}

	slack, err := p.Body(spec.NotifySlack)
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]string
	if err := json.Unmarshal(slack, &s); err != nil || len(s) != 1 {
		t.Fatalf("Slack body %s: %v", slack, err)
	}
	if want := "shop: rolled back (d-5f2c9a1b7e3d, revision 6 → 7): rolled back to revision 6\nWhy: checks failed 2 times in a row: error_rate"; s["text"] != want {
		t.Errorf("Slack text %q\nwant %q", s["text"], want)
	}

	// Who asked is said, for the events a person caused.
	a := audit.Actor{Token: "ci", TokenID: "t-1", Remote: "127.0.0.1"}
	msg, fields := audit.Record(audit.WithActor(t.Context(), a), "promote: approved", map[string]any{"phase": "AwaitingApproval", "request": "promote"})
	fj, _ := json.Marshal(fields)
	var stored map[string]any
	_ = json.Unmarshal(fj, &stored)
	pp := payloadOf(spec.NotifyPromoted, store.Event{Seq: 43, App: "shop", DeploymentID: d.ID, Message: msg, Fields: stored}, d)
	if pp.By == nil || *pp.By != a || pp.Reason != "" || pp.Outcome != "" {
		t.Errorf("promoted: %+v", pp)
	}
	if txt := pp.Text(); txt != "shop: promoted (d-5f2c9a1b7e3d, revision 6 → 7): promote: approved (by ci from 127.0.0.1)" {
		t.Errorf("Slack text %q", txt)
	}
}

func testItem(app string, seq int64, at time.Time) item {
	return item{payload: Payload{App: app, Seq: seq, Time: at}}
}

func TestQueueBounds(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	q := newQueue("k", "https://example.com (notifications[0])", 3, 0)
	for i := int64(1); i <= 3; i++ {
		if q.push(testItem("shop", i, t0)) {
			t.Fatalf("dropped below the limit at %d", i)
		}
	}
	// The head is on its way: a push past the limit drops the next oldest.
	q.sending = true
	if !q.push(testItem("shop", 4, t0)) {
		t.Fatal("no drop past the limit")
	}
	if seqs := queueSeqs(q); !slices.Equal(seqs, []int64{1, 3, 4}) {
		t.Fatalf("queue %v, want [1 3 4]", seqs)
	}
	q.sending = false
	q.push(testItem("web", 5, t0))
	if seqs := queueSeqs(q); !slices.Equal(seqs, []int64{3, 4, 5}) {
		t.Fatalf("queue %v, want [3 4 5]", seqs)
	}
	drops, why := q.takeDrops()
	if drops["shop"] != 2 || len(drops) != 1 || !strings.Contains(why, "3 more recent notifications waited (--notify-queue)") {
		t.Fatalf("drops %v %q", drops, why)
	}
	if d, _ := q.takeDrops(); d != nil {
		t.Fatal("drops reported twice")
	}
	q.done()
	if q.delivered != testItem("", 3, t0).mark() || q.oldest() != 4 {
		t.Fatalf("after a delivery: delivered %d, oldest %d", q.delivered, q.oldest())
	}
	// A limit of zero still holds one.
	if z := newQueue("z", "", 0, 0); z.limit != 1 {
		t.Fatal("limit 0")
	}
}

func TestQueueDropsStale(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	q := newQueue("k", "", 10, 0)
	for i := int64(1); i <= 4; i++ {
		q.push(testItem("shop", i, t0.Add(time.Duration(i)*time.Minute)))
	}
	if n := q.dropStale(t0.Add(150*time.Second), "too old"); n != 2 {
		t.Fatalf("dropped %d, want the 2 recorded before the cutoff", n)
	}
	if seqs := queueSeqs(q); !slices.Equal(seqs, []int64{3, 4}) {
		t.Fatalf("queue %v", seqs)
	}
	if d, why := q.takeDrops(); d["shop"] != 2 || why != "too old" || seqOf(q.delivered) != 2 {
		t.Fatalf("drops %v %q, delivered %d", d, why, seqOf(q.delivered))
	}
}

func queueSeqs(q *queue) []int64 {
	var out []int64
	for _, it := range q.items {
		out = append(out, it.seq())
	}
	return out
}

func TestBackoff(t *testing.T) {
	var got []time.Duration
	for a := 1; a <= 9; a++ {
		got = append(got, backoff(a, time.Second, time.Minute, 0))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("backoff %v, want seconds %v", got, want)
		}
	}
	// Jitter takes off at most a fifth.
	if d := backoff(3, time.Second, time.Minute, 0.999); d <= 3200*time.Millisecond || d > 4*time.Second {
		t.Fatalf("with jitter: %s", d)
	}
	// Large attempt counts do not overflow.
	if d := backoff(1000, time.Second, time.Minute, 0); d != time.Minute {
		t.Fatalf("attempt 1000: %s", d)
	}
}

func TestPolicy(t *testing.T) {
	var def Policy
	for addr, refused := range map[string]bool{
		"127.0.0.1": true, "::1": true, "10.1.2.3": true, "172.16.0.1": true, "192.168.1.1": true,
		"169.254.169.254": true, "fe80::1": true, "fd00::1": true, "0.0.0.0": true, "::": true,
		"100.64.0.1": true, "::ffff:127.0.0.1": true, "::ffff:10.0.0.1": true, "64:ff9b::a00:1": true, "224.0.0.1": true,
		"93.184.216.34": false, "2606:4700::1111": false, "8.8.8.8": false,
	} {
		err := def.Check(netip.MustParseAddr(addr))
		if (err != nil) != refused {
			t.Errorf("%s: %v, want refused %v", addr, err, refused)
		}
		if err != nil && !strings.Contains(err.Error(), "--notify-allow does not list it") {
			t.Errorf("%s: %v", addr, err)
		}
	}
	p, err := ParseAllow([]string{"127.0.0.1", "10.0.0.0/8", " ", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, refused := range map[string]bool{"127.0.0.1": false, "127.0.0.2": true, "10.200.0.1": false, "::ffff:10.0.0.1": false,
		"fd12::1": false, "192.168.1.1": true, "8.8.8.8": false} {
		if err := p.Check(netip.MustParseAddr(addr)); (err != nil) != refused {
			t.Errorf("allowing loopback and 10/8: %s: %v, want refused %v", addr, err, refused)
		}
	}
	if _, err := ParseAllow([]string{"intranet.example.com"}); err == nil || !strings.Contains(err.Error(), `--notify-allow "intranet.example.com": want a network`) {
		t.Fatalf("a name: %v", err)
	}
	// The dialler's check sees addresses, after names are resolved.
	if err := def.control("tcp", "127.0.0.1:80", nil); err == nil {
		t.Fatal("control let loopback through")
	}
	if err := p.control("tcp", "127.0.0.1:80", nil); err != nil {
		t.Fatal(err)
	}
}

func TestLabelsHideURLPaths(t *testing.T) {
	for _, c := range []struct {
		d    spec.Notification
		app  string
		want string
	}{
		{spec.Notification{URL: "https://hooks.slack.com/services/T0/B0/XXXX"}, "shop", "https://hooks.slack.com/… (notifications[2])"},
		{spec.Notification{URL: "http://127.0.0.1:9000"}, "", "http://127.0.0.1:9000 (the server's notifications[2])"},
		{spec.Notification{URL: "https://example.com/?token=x"}, "shop", "https://example.com/… (notifications[2])"},
		{spec.Notification{URLParam: "/shop/SLACK_URL"}, "shop", "the URL in /shop/SLACK_URL (notifications[2])"},
	} {
		if got := newDestination(c.app, 2, 1, c.d, nil).label(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.d, got, c.want)
		}
	}
	// The same place in every revision is the same destination; another
	// app's is another.
	a := newDestination("shop", 0, 1, spec.Notification{URL: "https://x.example", Format: "json", Events: []string{"live"}}, nil)
	b := newDestination("shop", 3, 2, spec.Notification{URL: "https://x.example", Format: "json"}, map[string]int64{"/x": 1})
	c := newDestination("web", 0, 1, spec.Notification{URL: "https://x.example", Format: "json"}, nil)
	if a.key != b.key || a.key == c.key {
		t.Fatalf("keys %s %s %s", a.key, b.key, c.key)
	}
}

// A notification dropped for room while the head waits does not move the
// delivered mark past the head: after a restart the head is still sent.
func TestQueueMarkNeverPassesTheHead(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	q := newQueue("k", "", 2, 0)
	q.push(testItem("shop", 1, t0))
	q.push(testItem("shop", 2, t0))
	q.sending = true
	q.push(testItem("shop", 3, t0)) // drops 2, the head being on its way
	if seqs := queueSeqs(q); !slices.Equal(seqs, []int64{1, 3}) {
		t.Fatalf("queue %v", seqs)
	}
	if q.delivered >= testItem("", 1, t0).mark() {
		t.Fatalf("the mark %d passed the waiting head", seqOf(q.delivered))
	}
}
