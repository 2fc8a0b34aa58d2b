package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"bluegreen/internal/testwait"
)

// The operator's settings of bluegreen.yaml at the edge, through a real
// server and router: the access log, the body cap, the answer timeout, and
// a drain that closes blue's WebSockets one after another.
func TestOperatorSettingsAtTheEdge(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	parts := specParts{router: "  preview_header: X-Bluegreen-Fleet\n  access_log: true\n  max_body: 1KiB\n  timeout: 2s\n", extra: quick}
	e.deployLive("v1", e.spec(parts))
	c := &http.Client{}

	// One JSON line per request in the router's log.
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.prod+"/?token=hidden", nil)
	req.Header.Set("X-Request-Id", "edge-e2e-1")
	resp, err := c.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /: %v %v", err, resp)
	}
	resp.Body.Close()
	var line map[string]any
	routerLog := filepath.Join(e.data, "router", "router.log")
	testwait.For(t, 10*time.Second, "the access line in "+routerLog, func() bool {
		data, _ := os.ReadFile(routerLog)
		for _, l := range strings.Split(string(data), "\n") {
			if strings.Contains(l, `"request_id":"edge-e2e-1"`) {
				return json.Unmarshal([]byte(l), &line) == nil
			}
		}
		return false
	})
	if line["msg"] != "access" || line["app"] != "shop" || line["status"] != 200.0 || line["path"] != "/" || line["fleet"] == "" || line["target"] == "" || line["method"] != "GET" {
		t.Errorf("access line: %v", line)
	}

	// A body over the cap: 413, the app never sees it.
	resp, err = c.Post("http://"+e.prod+"/", "text/plain", strings.NewReader(strings.Repeat("x", 2<<10)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "larger than the limit of app shop (1 KiB)") {
		t.Fatalf("2 KiB body: %s %q", resp.Status, b)
	}

	// A target slower than the timeout: 504, and the next request is served.
	resp, err = c.Get("http://" + e.prod + "/slow?ms=20000")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(b), "did not answer within 2s (the timeout of app shop)") {
		t.Fatalf("slow answer: %s %q", resp.Status, b)
	}
	if v, code := version(t, c, "http://"+e.prod+"/"); v != "v1" || code != 200 {
		t.Fatalf("after the timeout: %q %d", v, code)
	}

	// Blue's WebSockets are closed one after another when its drain ends,
	// and their clients reconnect to green.
	parts.extra = "bake: 0s\nretire:\n  keep_blue: 5m\n  drain_timeout: 1s\n  drain_spread: 2s\n"
	d := e.deploy("v2", e.spec(parts), nil)
	e.waitPhase(d.ID, 60*time.Second, "Retiring")
	const n = 5
	var open atomic.Int32
	stillOpen := make(chan int32, n) // at each close, how many of the others were still open
	reconnected := make(chan error, n)
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for range n {
		ws, _, err := websocket.Dial(wctx, "ws://"+e.prod+"/ws", &websocket.DialOptions{HTTPHeader: http.Header{"X-Bluegreen-Fleet": {"blue"}}})
		if err != nil {
			t.Fatalf("WebSocket to blue: %v", err)
		}
		defer ws.CloseNow()
		open.Add(1)
		go func() {
			for {
				if _, _, err := ws.Read(wctx); err != nil {
					break
				}
			}
			stillOpen <- open.Add(-1)
			again, _, err := websocket.Dial(wctx, "ws://"+e.prod+"/ws", nil)
			if err == nil {
				err = again.Write(wctx, websocket.MessageText, []byte("back"))
				again.CloseNow()
			}
			reconnected <- err
		}()
	}
	if _, err := e.api.Promote(ctx, "shop", false); err != nil { // skip keep_blue
		t.Fatal(err)
	}
	d = e.waitEnd(d.ID, 60*time.Second)
	if d.Outcome != "succeeded" {
		t.Fatalf("%s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	var drain string
	for _, ev := range e.events(d.ID) {
		if ev.Kind == "drain" {
			drain = ev.Message
		}
	}
	if !strings.Contains(drain, fmt.Sprintf("%d upgraded connections, one after another over 2s", n)) {
		t.Errorf("drain event: %q", drain)
	}
	first := <-stillOpen
	if first < 2 {
		t.Errorf("when the first WebSocket was closed, %d others were open: the closes were not spread", first)
	}
	for range n - 1 {
		<-stillOpen
	}
	for range n {
		if err := <-reconnected; err != nil {
			t.Errorf("reconnecting to green: %v", err)
		}
	}
}

// `bluegreen router --access-log FILE` writes the access lines to FILE, not
// to its log.
func TestRouterAccessLogFile(t *testing.T) {
	dir := t.TempDir()
	prod := freeAddr(t)
	backend := serveFleet(t, "blue", nil)
	routes := filepath.Join(dir, "routes.yaml")
	conf := fmt.Sprintf("production: %s\napps:\n  shop:\n    access_log: true\n    fleets:\n      blue: {weight: 100, targets: [%s]}\n", prod, backend)
	if err := os.WriteFile(routes, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	accessFile := filepath.Join(dir, "access.log")
	stderr := &lockedBuffer{}
	cmd := exec.Command(bin.bluegreen, "router", "--config", routes, "--log-format", "json", "--access-log", accessFile)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("router log:\n%s", stderr)
		}
	})
	var body string
	testwait.For(t, 10*time.Second, "the router to answer", func() bool {
		resp, err := http.Get("http://" + prod + "/items?id=7")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return resp.StatusCode == 200
	})
	if body != "blue" {
		t.Fatalf("answer %q", body)
	}
	var line map[string]any
	testwait.For(t, 10*time.Second, "an access line in "+accessFile, func() bool {
		data, _ := os.ReadFile(accessFile)
		first, _, _ := strings.Cut(string(data), "\n")
		return first != "" && json.Unmarshal([]byte(first), &line) == nil
	})
	if line["msg"] != "access" || line["app"] != "shop" || line["path"] != "/items" || line["status"] != 200.0 || line["target"] != backend {
		t.Errorf("access line: %v", line)
	}
	if strings.Contains(stderr.String(), `"msg":"access"`) {
		t.Errorf("access lines in the router's log too:\n%s", stderr)
	}
}
