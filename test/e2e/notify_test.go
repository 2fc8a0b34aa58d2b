package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/notify"
	"bluegreen/internal/testwait"
)

// hookReceiver is a webhook receiver on 127.0.0.1: it verifies each
// notification's signature as a receiver should, and records what came.
type hookReceiver struct {
	t      *testing.T
	addr   string
	secret []byte
	mu     sync.Mutex
	srv    *http.Server
	got    []hookDelivery
}

type hookDelivery struct {
	path, event, delivery string
	payload               notify.Payload
	text                  string // a Slack body's
}

func newHookReceiver(t *testing.T, secret string) *hookReceiver {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &hookReceiver{t: t, addr: ln.Addr().String(), secret: []byte(secret)}
	r.serve(ln)
	t.Cleanup(r.down)
	return r
}

func (r *hookReceiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.handle)}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// down closes the receiver: connections are refused until up.
func (r *hookReceiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

func (r *hookReceiver) up() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("listening again on %s: %v", r.addr, err)
	}
	r.serve(ln)
}

func (r *hookReceiver) handle(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	d := hookDelivery{path: req.URL.Path, event: req.Header.Get(notify.HeaderEvent), delivery: req.Header.Get(notify.HeaderDelivery)}
	if d.path == "/hook" {
		err := notify.Verify(r.secret, req.Header.Get(notify.HeaderSignature), req.Header.Get(notify.HeaderTimestamp), body, time.Now(), notify.DefaultTolerance)
		if err != nil {
			r.t.Errorf("a notification that does not verify: %v", err)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if err := json.Unmarshal(body, &d.payload); err != nil {
			r.t.Errorf("a body that is not JSON: %s", body)
		}
	} else {
		var s map[string]string
		if err := json.Unmarshal(body, &s); err != nil || len(s) != 1 {
			r.t.Errorf("a Slack body that is not {text}: %s", body)
		}
		d.text = s["text"]
	}
	r.mu.Lock()
	r.got = append(r.got, d)
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *hookReceiver) url(path string) string { return "http://" + r.addr + path }

// on returns what arrived on path, in order.
func (r *hookReceiver) on(path string) []hookDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []hookDelivery
	for _, d := range r.got {
		if d.path == path {
			out = append(out, d)
		}
	}
	return out
}

// events are the events of the deliveries ds of deployment id, in order.
func eventsFor(ds []hookDelivery, id string) []string {
	var out []string
	for _, d := range ds {
		if d.payload.DeploymentID == id {
			out = append(out, d.event)
		}
	}
	return out
}

// TestNotificationsEndToEnd: a real server sends each deployment's chosen
// events to a receiver on loopback, signed, once each and in order; while
// the receiver is down, deployments run to their end and the
// notifications wait, up to the stated bound (--notify-queue), past which
// they are dropped and the drop is said; they survive a server killed
// meanwhile.
func TestNotificationsEndToEnd(t *testing.T) {
	const secret = "a-secret-shared-with-the-receiver"
	r := newHookReceiver(t, secret)
	serverList := filepath.Join(t.TempDir(), "notifications.yaml")
	if err := os.WriteFile(serverList, []byte("notifications:\n  - url: "+r.url("/chat")+"\n    format: slack\n    events: [rolled_back]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startDeployEnv(t, bin.bluegreen, func(e *deployEnv) {
		e.args = append(e.args, "--notifications", serverList, "--notify-allow", "127.0.0.1",
			"--notify-queue", "3", "--notify-retry-max", "200ms")
	})
	ctx := context.Background()
	if _, err := e.api.PutParam(ctx, "/shop/HOOK_SECRET", secret, true, 0); err != nil {
		t.Fatal(err)
	}
	notifications := fmt.Sprintf("params: [/shop/HOOK_SECRET]\nnotifications:\n  - url: %s\n    secret_param: /shop/HOOK_SECRET\n", r.url("/hook"))
	good := e.specFor(quick + notifications)
	manual := e.specFor(quick + "strategy:\n  approval: manual\n" + notifications)
	bad := e.spec(specParts{env: `{ HELLO_FAIL_HEALTH: "1" }`, startup: "2s", extra: quick + notifications})
	waitCount := func(what, path string, n int) {
		t.Helper()
		testwait.For(t, time.Minute, what, func() bool { return len(r.on(path)) >= n })
	}

	// The receiver is up: every event, in order, once.
	d1 := e.deployLive("v1", good)
	waitCount("v1's notifications", "/hook", 3)
	d2 := e.deploy("v2", manual, nil)
	e.waitPhase(d2.ID, time.Minute, "AwaitingApproval")
	if _, err := e.api.Promote(ctx, "shop", false); err != nil {
		t.Fatal(err)
	}
	e.waitEnd(d2.ID, time.Minute)
	waitCount("v2's notifications", "/hook", 8)
	hook := r.on("/hook")
	if got, want := eventsFor(hook, d1.ID), []string{"started", "live", "succeeded"}; !slices.Equal(got, want) {
		t.Errorf("v1: %v, want %v", got, want)
	}
	if got, want := eventsFor(hook, d2.ID), []string{"started", "awaiting_approval", "promoted", "live", "succeeded"}; !slices.Equal(got, want) {
		t.Errorf("v2: %v, want %v", got, want)
	}
	for _, d := range hook {
		if d.event == "promoted" && (d.payload.By == nil || d.payload.By.Token != "admin" || d.payload.By.Remote != "127.0.0.1") {
			t.Errorf("promoted by %+v", d.payload.By)
		}
	}

	// The receiver is down: a deployment that rolls back runs to its end,
	// and its notifications arrive once the receiver is back.
	r.down()
	d3 := e.deploy("v3", bad, nil)
	if got := e.waitEnd(d3.ID, time.Minute); got.Outcome != "rolled_back" {
		t.Fatalf("v3: %s (%s)", got.Outcome, got.Reason)
	}
	testwait.For(t, time.Minute, "the failing receiver to be recorded", func() bool { return len(e.eventsOfKind("notification.failing")) > 0 })
	r.up()
	waitCount("v3's notifications", "/hook", 11)
	waitCount("the server's Slack notification of v3's rollback", "/chat", 1)
	hook = r.on("/hook")
	if got, want := eventsFor(hook, d3.ID), []string{"started", "rolling_back", "rolled_back"}; !slices.Equal(got, want) {
		t.Errorf("v3: %v, want %v", got, want)
	}
	if last := hook[len(hook)-1]; last.payload.Outcome != "rolled_back" || !strings.Contains(last.payload.Reason, "503 Service Unavailable") {
		t.Errorf("rolled_back without why: %+v", last.payload)
	}
	if chat := r.on("/chat")[0].text; !strings.HasPrefix(chat, "shop: rolled back ("+d3.ID+", revision 2 → 3)") || !strings.Contains(chat, "\nWhy: ") {
		t.Errorf("Slack text: %q", chat)
	}

	// Down again, for two deployments: six notifications for a queue of
	// three. The oldest three are dropped, and the drop is said.
	r.down()
	d4 := e.deployLive("v4", good)
	d5 := e.deploy("v5", bad, nil)
	e.waitEnd(d5.ID, time.Minute)
	dropped := func() int {
		n := 0
		for _, ev := range e.eventsOfKind("notification.dropped") {
			if strings.Contains(ev.Message, "/… (notifications[0])") {
				n += int(ev.Fields["count"].(float64))
			}
		}
		return n
	}
	testwait.For(t, time.Minute, "the drops to be recorded", func() bool { return dropped() == 3 })
	drop := e.eventsOfKind("notification.dropped")[0]
	if !strings.Contains(drop.Message, "dropped: the receiver was not reached while 3 more recent notifications waited (--notify-queue)") {
		t.Errorf("drop event: %s", drop.Message)
	}
	if !strings.Contains(e.srvLog.String(), `"msg":"notifications dropped"`) {
		t.Error("the server log does not say that notifications were dropped")
	}
	r.up()
	waitCount("what was kept", "/hook", 14)
	hook = r.on("/hook")
	kept := append(eventsFor(hook, d4.ID), eventsFor(hook, d5.ID)...)
	if len(kept) != 3 || hook[len(hook)-1].payload.DeploymentID != d5.ID || hook[len(hook)-1].event != "rolled_back" {
		t.Errorf("after the drops: %v, the last %+v", kept, hook[len(hook)-1])
	}

	// Down, and the server killed after a deployment: the notifications
	// waiting are sent by the next server.
	r.down()
	d6 := e.deploy("v6", bad, nil)
	e.waitEnd(d6.ID, time.Minute)
	e.killServer()
	r.up()
	e.startServer()
	waitCount("what waited across the restart", "/hook", 17)
	hook = r.on("/hook")
	if got, want := eventsFor(hook, d6.ID), []string{"started", "rolling_back", "rolled_back"}; !slices.Equal(got, want) {
		t.Errorf("v6: %v, want %v", got, want)
	}

	// Once each, in the order of the log.
	seen := map[string]bool{}
	for i, d := range hook {
		if seen[d.delivery] {
			t.Errorf("%s arrived twice", d.delivery)
		}
		seen[d.delivery] = true
		if i > 0 && d.payload.Seq < hook[i-1].payload.Seq {
			t.Errorf("out of order: %d after %d", d.payload.Seq, hook[i-1].payload.Seq)
		}
	}
	if n := len(r.on("/chat")); n != 3 {
		t.Errorf("the server's destination got %d notifications, want 3 (v3, v5 and v6 rolled back)", n)
	}
}

// eventsOfKind are the log's events of a kind.
func (e *deployEnv) eventsOfKind(kind string) []api.Event {
	e.t.Helper()
	evs, err := e.api.Events(context.Background(), "", "", 0, false)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []api.Event
	for _, ev := range evs {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}
