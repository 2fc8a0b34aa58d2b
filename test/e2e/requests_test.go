package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"bluegreen/internal/api"
	"bluegreen/internal/testwait"
)

// version asks the production listener which version answers.
func version(t *testing.T, c *http.Client, url string, header ...string) (string, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Header.Get("X-Version"), resp.StatusCode
}

func TestAbortAndRollback(t *testing.T) {
	e := newRaceDeployEnv(t)
	ctx := context.Background()
	e.deployLive("v1", e.specFor(quick))
	l := startLoad(t, "http://"+e.prod+"/", 200)

	// abort while a hook hangs: the hook is stopped, not waited for.
	d := e.deploy("v1b", e.specFor(quick+"hooks:\n  validate_service: [{ run: ./hooks/hang.sh, timeout: 10m }]\n"),
		map[string]string{"hooks/hang.sh": "#!/bin/sh\necho checking forever\nsleep 600\n"})
	e.waitPhase(d.ID, 30*time.Second, "Validating")
	testwait.For(t, 10*time.Second, "the hook to start", func() bool { return len(hookProcesses(t, e.data, "sleep")) > 0 })
	if _, err := e.api.Abort(ctx, "shop", "hook hangs"); err != nil {
		t.Fatal(err)
	}
	if d = e.waitEnd(d.ID, 20*time.Second); d.Outcome != "rolled_back" || !strings.Contains(d.Reason, "hook hangs") {
		t.Fatalf("abort during a hook: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	testwait.For(t, 10*time.Second, "the hook to be gone", func() bool { return len(hookProcesses(t, e.data, "sleep")) == 0 })

	// abort during a pause: back to v1.
	d = e.deploy("v2", e.specFor(quick+"strategy:\n  steps:\n    - { weight: 50, pause: {} }\n    - { weight: 100 }\n"), nil)
	e.waitPhase(d.ID, 30*time.Second, "Shifting")
	// One deployment at a time: a second one is refused, naming the first.
	rev, err := e.api.UploadRevision(ctx, bytes.NewReader(e.bundle("v2b", e.specFor(quick), nil)), "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.api.Deploy(ctx, "shop", rev.Generation)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Code != "deployment_in_progress" || !strings.Contains(ae.Message, d.ID) {
		t.Fatalf("a second deployment: %v; want 409 deployment_in_progress naming %s", err, d.ID)
	}
	if _, err := e.api.Abort(ctx, "shop", "the new checkout looks wrong"); err != nil {
		t.Fatal(err)
	}
	d = e.waitEnd(d.ID, 30*time.Second)
	if d.Outcome != "rolled_back" || !strings.Contains(d.Reason, "the new checkout looks wrong") {
		t.Fatalf("abort: %s (%s)", d.Outcome, d.Reason)
	}

	// rollback while blue is warm: a weight flip.
	d = e.deploy("v3", e.specFor("bake: 0s\nretire:\n  keep_blue: 5m\n  drain_timeout: 2s\n"), nil)
	e.waitPhase(d.ID, 30*time.Second, "Retiring")
	c := &http.Client{}
	testwait.For(t, 10*time.Second, "v3 to answer", func() bool { v, _ := version(t, c, "http://"+e.prod+"/"); return v == "v3" })
	start := time.Now()
	if _, err := e.api.Rollback(ctx, "shop", 0); err != nil {
		t.Fatal(err)
	}
	// From the call, until every answer is v1 (20 in a row).
	var flipped time.Duration
	streak := 0
	testwait.For(t, 10*time.Second, "v1 to answer everything", func() bool {
		v, _ := version(t, c, "http://"+e.prod+"/")
		if v != "v1" {
			streak = 0
			return false
		}
		if streak == 0 {
			flipped = time.Since(start)
		}
		streak++
		return streak >= 20
	})
	t.Logf("rollback while blue was warm: every request answered by blue %s after the rollback call", flipped.Round(time.Millisecond))
	d = e.waitEnd(d.ID, 30*time.Second)
	if d.Outcome != "rolled_back" {
		t.Fatalf("rollback while warm: %s (%s)", d.Outcome, d.Reason)
	}
	if app, _ := e.api.App(ctx, "shop"); app.LiveRevision != 1 {
		t.Fatalf("live revision after rolling back = %d, want 1", app.LiveRevision)
	}

	// rollback after blue retired: a new deployment of the earlier
	// revision on the fast path, which skips its approval and pauses.
	slow := "strategy:\n  approval: manual\n  approval_timeout: 1h\n  steps:\n    - { weight: 10, pause: 1h }\n    - { weight: 100 }\n"
	d = e.deploy("v4", e.specFor(quick+slow), nil)
	e.waitPhase(d.ID, 30*time.Second, "AwaitingApproval")
	if _, err := e.api.Promote(ctx, "shop", true); err != nil {
		t.Fatal(err)
	}
	if d = e.waitEnd(d.ID, 30*time.Second); d.Outcome != "succeeded" {
		t.Fatalf("v4: %s (%s)", d.Outcome, d.Reason)
	}
	if st := trafficSteps(e.events(d.ID)); len(st) != 1 || st[0].weight != 100 {
		t.Fatalf("promote --full moved traffic in steps %v; want 100 at once", st)
	}
	v4 := d.ToRevision
	v5 := e.deployLive("v5", e.specFor(quick)).ToRevision
	rb, err := e.api.Rollback(ctx, "shop", 0)
	if err != nil {
		t.Fatal(err)
	}
	if rb.ToRevision != v4 || rb.FromRevision != v5 {
		t.Fatalf("rollback after retirement deploys revision %d over %d; want %d over %d", rb.ToRevision, rb.FromRevision, v4, v5)
	}
	if rb = e.waitEnd(rb.ID, 30*time.Second); rb.Outcome != "succeeded" {
		t.Fatalf("rollback after retirement: %s (%s)\n%s", rb.Outcome, rb.Reason, e.eventLog(rb.ID))
	}
	for _, ev := range e.events(rb.ID) {
		if ev.Kind == "phase" && (ev.Fields["phase"] == "AwaitingApproval") {
			t.Fatalf("the fast path waited for approval:\n%s", e.eventLog(rb.ID))
		}
	}
	if st := trafficSteps(e.events(rb.ID)); len(st) != 1 || st[0].weight != 100 {
		t.Fatalf("the fast path moved traffic in steps %v; want 100 at once", st)
	}
	testwait.For(t, 10*time.Second, "v4 to answer", func() bool { v, _ := version(t, c, "http://"+e.prod+"/"); return v == "v4" })
	recs := l.stop()
	if f := failures(recs); len(f) > 0 {
		t.Fatalf("%d of %d requests failed: %s\nbgload: %s", len(f), len(recs), summary(f), l.out.String())
	}
	t.Logf("%s, 0 failed", summary(recs))
}

func TestRetiringBlueDrainsLongWork(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	preview := specParts{router: "  preview_header: X-Bluegreen-Fleet\n"}
	preview.extra = quick
	e.deployLive("v1", e.spec(preview))
	// Each instance's output is kept for logs.
	ins := e.instances()
	if len(ins) != 2 {
		t.Fatalf("instances %+v", ins)
	}
	// The platform reads an instance's output as it comes (every 50ms).
	var out string
	var err error
	testwait.ForOr(t, 10*time.Second, "hello's start line naming v1 in the logs of "+ins[0].ID, func() bool {
		out, err = e.api.Logs(ctx, "shop", ins[0].ID, 20)
		return err == nil && strings.Contains(out, "v1")
	}, func() string { return fmt.Sprintf("logs: %q, %v", out, err) })
	if _, err := e.api.Logs(ctx, "shop", "shop-9-blue-0", 0); err == nil {
		t.Fatal("logs of an unknown instance: no error")
	}
	preview.extra = "bake: 0s\nretire:\n  keep_blue: 5m\n  drain_timeout: 3s\n"
	d := e.deploy("v2", e.spec(preview), nil)
	d = e.waitPhase(d.ID, 30*time.Second, "Retiring")
	// The preview header names roles: blue is v1, warm, whatever its slot.
	blue := "blue"
	// Production now goes to v2; the preview header still reaches warm blue.
	c := &http.Client{}
	if v, _ := version(t, c, "http://"+e.prod+"/"); v != "v2" {
		t.Fatalf("production answered by %q, want v2", v)
	}
	if v, _ := version(t, c, "http://"+e.prod+"/", "X-Bluegreen-Fleet", blue); v != "v1" {
		t.Fatalf("blue (%s) answered by %q, want v1", blue, v)
	}
	w := openLongWork(t, e.prod, blue, 1500*time.Millisecond)
	defer w.sse.Body.Close()
	defer w.ws.CloseNow()
	if _, err := e.api.Promote(ctx, "shop", false); err != nil { // skip keep_blue
		t.Fatal(err)
	}
	if err := <-w.slowDone; err != nil {
		t.Fatalf("the slow request on blue did not complete: %v", err)
	}
	d = e.waitEnd(d.ID, 30*time.Second)
	if d.Outcome != "succeeded" {
		t.Fatalf("%s (%s)", d.Outcome, d.Reason)
	}
	var drain map[string]any
	for _, ev := range e.events(d.ID) {
		if ev.Kind == "drain" {
			drain = ev.Fields
			t.Logf("drain event: %s", ev.Message)
		}
	}
	if drain == nil || drain["complete"] != false || drain["open_streams"] != float64(1) || drain["open_connections"] != float64(1) {
		t.Fatalf("drain event fields %v; want incomplete with one stream and one upgraded connection closed\n%s", drain, e.eventLog(d.ID))
	}
	// The stream and the WebSocket were closed at the deadline.
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, _, err := w.ws.Read(rctx); err == nil {
		t.Fatal("the WebSocket on blue is still open after blue retired")
	}
	if _, err := io.Copy(io.Discard, w.sse.Body); err == nil {
		// a clean end is fine too: the stream ended
		t.Log("the SSE stream ended")
	}
	for _, in := range e.instances() {
		if in.Revision == 1 {
			t.Fatalf("blue instance %s still listed after retiring", in.ID)
		}
	}
}

// openLongWork opens, on the given fleet through the preview header, a
// slow request, an SSE stream and a WebSocket.
type longWork struct {
	slowDone chan error
	sse      *http.Response
	ws       *websocket.Conn
}

func openLongWork(t *testing.T, prod, fleet string, slow time.Duration) *longWork {
	t.Helper()
	w := &longWork{slowDone: make(chan error, 1)}
	go func() {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/slow?ms=%d", prod, slow.Milliseconds()), nil)
		req.Header.Set("X-Bluegreen-Fleet", fleet)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			w.slowDone <- err
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("slow request: %s: %s", resp.Status, b)
		}
		w.slowDone <- err
	}()
	req, _ := http.NewRequest(http.MethodGet, "http://"+prod+"/sse?interval=100ms", nil)
	req.Header.Set("X-Bluegreen-Fleet", fleet)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("SSE: %v %v", err, resp)
	}
	w.sse = resp
	if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || !strings.HasPrefix(line, "id:") {
		t.Fatalf("SSE first line %q, %v", line, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+prod+"/ws", &websocket.DialOptions{HTTPHeader: http.Header{"X-Bluegreen-Fleet": {fleet}}})
	if err != nil {
		t.Fatalf("WebSocket: %v", err)
	}
	w.ws = ws
	if err := ws.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, b, err := ws.Read(ctx); err != nil || string(b) != "ping" {
		t.Fatalf("WebSocket echo %q, %v", b, err)
	}
	return w
}
