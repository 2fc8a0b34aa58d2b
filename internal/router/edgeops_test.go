package router

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"bluegreen/internal/testwait"
)

// lockedBuffer is an access log the test reads while the router writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines parses every line written so far; a line that is not JSON fails the test.
func (l *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	data := l.b.String()
	l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(data, "\n"), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("access line is not JSON: %v\n%s", err, line)
		}
		out = append(out, m)
	}
	return out
}

// oneExchange writes req on a new connection and reads one response.
func oneExchange(t *testing.T, addr, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestAccessLogLinesPerRequest(t *testing.T) {
	be := protoBackend(t)
	var log lockedBuffer
	prod := freeAddr(t)
	cfg := &Config{Production: prod, Apps: map[string]*AppConfig{
		"shop":  {Hosts: []string{"shop.test"}, AccessLog: true, Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{backendAddr(be)}}}},
		"quiet": {Hosts: []string{"quiet.test"}, Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{backendAddr(be)}}}},
	}}
	startRouterWith(t, cfg, Options{AccessLog: &log})

	// A plain GET (the event loop), one with a query, a chunked POST (the
	// goroutine path) and a request of the app that logs nothing.
	resp, _ := oneExchange(t, prod, "GET /headers?token=secret HTTP/1.1\r\nHost: shop.test\r\nX-Request-Id: trace-1\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("GET: %s", resp.Status)
	}
	resp, body := oneExchange(t, prod, "POST /count HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	if resp.StatusCode != 200 || body != "5" {
		t.Fatalf("chunked POST: %s %q", resp.Status, body)
	}
	postID := resp.Header.Get("X-Request-Id")
	oneExchange(t, prod, "GET /headers HTTP/1.1\r\nHost: quiet.test\r\n\r\n")

	testwait.For(t, 10*time.Second, "two access lines", func() bool { return len(log.lines(t)) >= 2 })
	lines := log.lines(t)
	if len(lines) != 2 {
		t.Fatalf("want 2 lines (none for the app without access_log), got %d: %v", len(lines), lines)
	}
	get, post := lines[0], lines[1]
	want := map[string]any{"msg": "access", "app": "shop", "fleet": "blue", "target": backendAddr(be), "method": "GET",
		"host": "shop.test", "path": "/headers", "status": 200.0, "request_id": "trace-1", "client": "127.0.0.1",
		"proto": "HTTP/1.1", "scheme": "http", "listener": "production"}
	for k, v := range want {
		if get[k] != v {
			t.Errorf("GET line: %s = %v, want %v (%v)", k, get[k], v, get)
		}
	}
	if post["method"] != "POST" || post["path"] != "/count" || post["bytes_in"] != 5.0 || post["request_id"] != postID {
		t.Errorf("POST line: %v (request ID %s)", post, postID)
	}
	for _, l := range lines {
		if d, ok := l["duration_ms"].(float64); !ok || d < 0 {
			t.Errorf("duration_ms: %v", l["duration_ms"])
		}
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(l["time"])); err != nil {
			t.Errorf("time: %v", err)
		}
	}
	if strings.Contains(fmt.Sprint(lines), "secret") {
		t.Errorf("the query reached the access log: %v", lines)
	}
}

func TestAccessLogOverHTTP2(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	now := time.Now()
	c, k := ca.issue(t, dir, "shop", []string{"shop.test"}, now.Add(-time.Hour), now.Add(time.Hour))
	be := newBackend(t, "blue")
	prod := freeAddr(t)
	var log lockedBuffer
	startRouterWith(t, &Config{Production: prod, Apps: map[string]*AppConfig{"shop": {Hosts: []string{"shop.test"}, AccessLog: true,
		TLS:    &AppTLS{CertFile: c, KeyFile: k},
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{be.addr()}}}}}}, Options{AccessLog: &log})
	for _, h2 := range []bool{true, false} {
		resp, body := get(t, tlsClient(ca, prod, h2), "https://shop.test/hello?x=1")
		if body != "blue" {
			t.Fatalf("h2=%v: %s %q", h2, resp.Status, body)
		}
	}
	testwait.For(t, 10*time.Second, "two access lines", func() bool { return len(log.lines(t)) >= 2 })
	lines := log.lines(t)
	for i, proto := range []string{"HTTP/2.0", "HTTP/1.1"} {
		l := lines[i]
		if l["proto"] != proto || l["scheme"] != "https" || l["path"] != "/hello" || l["status"] != 200.0 || l["fleet"] != "blue" || l["bytes_out"] != 4.0 {
			t.Errorf("line %d: %v", i, l)
		}
	}
}

func TestMaxBody(t *testing.T) {
	be := protoBackend(t)
	prod := freeAddr(t)
	var log lockedBuffer
	startRouterWith(t, &Config{Production: prod, Apps: map[string]*AppConfig{"shop": {MaxBody: 1000, AccessLog: true,
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{backendAddr(be)}}}}}}, Options{AccessLog: &log})
	wantLimit := "larger than the limit of app shop (1000 bytes)"

	// Within the cap: with a length and chunked.
	if resp, body := oneExchange(t, prod, "POST /count HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n"+strings.Repeat("x", 1000)); body != "1000" {
		t.Fatalf("body at the cap: %s %q", resp.Status, body)
	}
	if resp, body := oneExchange(t, prod, "POST /count HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n"+strings.Repeat("x", 1000)+"\r\n0\r\n\r\n"); body != "1000" {
		t.Fatalf("chunked body at the cap: %s %q", resp.Status, body)
	}
	// A small body over the cap (the event loop takes it whole).
	resp, body := oneExchange(t, prod, "POST /count HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n"+strings.Repeat("x", 1001))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, wantLimit) {
		t.Fatalf("1001 bytes: %s %q", resp.Status, body)
	}
	// A large Content-Length is refused at once: the answer comes while
	// the client has sent 8 KiB of its 100 MB (what the server reads ahead).
	resp, body = oneExchange(t, prod, "POST /count HTTP/1.1\r\nHost: a\r\nContent-Length: 104857600\r\n\r\n"+strings.Repeat("x", 8<<10))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, wantLimit) || !resp.Close {
		t.Fatalf("100 MB announced: %s close=%v %q", resp.Status, resp.Close, body)
	}
	// A chunked body that grows past the cap is cut, and the client told why.
	for _, size := range []int{1001, 200 << 10} {
		chunk := strings.Repeat("y", size)
		resp, body = oneExchange(t, prod, fmt.Sprintf("POST /count HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", size, chunk))
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, wantLimit) {
			t.Fatalf("chunked %d bytes: %s %q", size, resp.Status, body)
		}
	}
	testwait.For(t, 10*time.Second, "the access lines of the refusals", func() bool { return len(log.lines(t)) >= 6 })
	n := 0
	for _, l := range log.lines(t) {
		if l["status"] == 413.0 {
			n++
		}
	}
	if n != 4 {
		t.Errorf("access lines with 413: %d, want 4", n)
	}
}

func TestMaxBodyOverHTTP2(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	now := time.Now()
	c, k := ca.issue(t, dir, "shop", []string{"shop.test"}, now.Add(-time.Hour), now.Add(time.Hour))
	be := protoBackend(t)
	prod := freeAddr(t)
	startRouterWith(t, &Config{Production: prod, Apps: map[string]*AppConfig{"shop": {Hosts: []string{"shop.test"}, MaxBody: 1 << 10,
		TLS:    &AppTLS{CertFile: c, KeyFile: k},
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{backendAddr(be)}}}}}}, Options{})
	cl := tlsClient(ca, prod, true)
	for _, streamed := range []bool{false, true} {
		var body io.Reader = strings.NewReader(strings.Repeat("z", 4<<10))
		if streamed {
			body = io.MultiReader(body) // no length: the stream is cut as it grows
		}
		resp, err := cl.Post("https://shop.test/count", "text/plain", body)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "(1 KiB)") {
			t.Fatalf("streamed=%v: %s %q", streamed, resp.Status, b)
		}
	}
}

func TestTimeoutAnswers504AndSparesOtherApps(t *testing.T) {
	// A target that reads the request and holds its answer until released.
	release := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Query().Get("ms") != "1" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "slow done")
	}))
	t.Cleanup(be.Close)
	t.Cleanup(func() { close(release) })
	fast := newBackend(t, "fast")
	prod := freeAddr(t)
	var log lockedBuffer
	r := startRouterWith(t, &Config{Production: prod, Apps: map[string]*AppConfig{
		"slow":  {Hosts: []string{"slow.test"}, Timeout: Duration(300 * time.Millisecond), AccessLog: true, Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{backendAddr(be)}}}},
		"other": {Hosts: []string{"other.test"}, Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{fast.addr()}}}},
	}}, Options{AccessLog: &log})

	type answer struct {
		resp *http.Response
		body string
	}
	// Both paths: a GET on the event loop, a chunked POST on the goroutine path.
	for _, req := range []string{
		"GET /slow?ms=60000 HTTP/1.1\r\nHost: slow.test\r\n\r\n",
		"POST /slow?ms=60000 HTTP/1.1\r\nHost: slow.test\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
	} {
		done := make(chan answer, 1)
		go func() {
			resp, body := oneExchange(t, prod, req)
			done <- answer{resp, body}
		}()
		// While the slow app waits, the other app answers.
		if _, body := oneExchange(t, prod, "GET / HTTP/1.1\r\nHost: other.test\r\n\r\n"); body != "fast" {
			t.Fatalf("other app: %q", body)
		}
		a := <-done
		if a.resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(a.body, "did not answer within 300ms (the timeout of app slow)") {
			t.Fatalf("%q: %s %q", req[:4], a.resp.Status, a.body)
		}
	}
	// Quick answers within the timeout pass.
	if resp, body := oneExchange(t, prod, "GET /slow?ms=1 HTTP/1.1\r\nHost: slow.test\r\n\r\n"); body != "slow done" {
		t.Fatalf("quick answer: %s %q", resp.Status, body)
	}
	fs := r.Stats().Apps["slow"].Fleets["blue"]
	if fs.Totals.Timeouts != 2 || fs.Targets[0].Totals.Timeouts != 2 || fs.Totals.ByClass["5xx"] != 2 {
		t.Errorf("timeouts counted: fleet %+v target %+v", fs.Totals, fs.Targets[0].Totals)
	}
	if !fs.Targets[0].Healthy || fs.Targets[0].Suspect {
		t.Errorf("a slow target is not a dead one: %+v", fs.Targets[0])
	}
	testwait.For(t, 10*time.Second, "three access lines", func() bool { return len(log.lines(t)) >= 3 })
	for _, l := range log.lines(t)[:2] {
		if l["status"] != 504.0 || l["timeout"] != true || l["target"] != backendAddr(be) {
			t.Errorf("access line of a timeout: %v", l)
		}
	}
}

func TestDrainSpreadsItsCloses(t *testing.T) {
	be := protoBackend(t)
	prod := freeAddr(t)
	const n = 6
	spread := 1200 * time.Millisecond
	r := startRouterWith(t, &Config{Production: prod, Apps: map[string]*AppConfig{"shop": {DrainSpread: Duration(spread),
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{backendAddr(be)}}}}}}, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	closed := make(chan int, n)
	for i := range n {
		ws, _, err := websocket.Dial(ctx, "ws://"+prod+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		go func() {
			_, _, err := ws.Read(ctx)
			if err != nil {
				closed <- i
			}
		}()
	}
	// Two event streams too, served by the event loop.
	streamEnded := make(chan error, 2)
	for range 2 {
		resp, err := http.Get("http://" + prod + "/sse")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		go func() {
			_, err := io.Copy(io.Discard, resp.Body)
			streamEnded <- err
		}()
	}
	testwait.For(t, 10*time.Second, "the WebSockets and streams to be counted", func() bool {
		fs := r.Stats().Apps["shop"].Fleets["blue"]
		return fs.Upgraded == n && fs.Streaming == 2
	})
	type result struct {
		rep DrainReport
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := r.Drain(ctx, DrainRequest{App: "shop", Fleet: "blue", Timeout: Duration(50 * time.Millisecond)})
		done <- result{rep, err}
	}()
	// When the first WebSocket is closed, the others are still open: the
	// closes come one after another, not all at the deadline.
	<-closed
	if open := r.Stats().Apps["shop"].Fleets["blue"].Upgraded; open < 2 {
		t.Errorf("after the first close, %d WebSockets are open; want most of %d", open, n)
	}
	res := <-done
	if res.err != nil || res.rep.Complete || res.rep.OpenConnections != n || res.rep.OpenStreams != 2 || res.rep.Spread.D() != spread {
		t.Fatalf("drain: %+v %v", res.rep, res.err)
	}
	// The last close is not due before its place in the spread.
	if min := 50*time.Millisecond + spreadDelay(n+1, n+2, spread); res.rep.Waited.D() < min {
		t.Errorf("drain waited %s, less than the %s its spread needs", res.rep.Waited.D(), min)
	}
	for range n - 1 {
		<-closed
	}
	for range 2 {
		if err := <-streamEnded; err == nil {
			t.Error("an event stream ended cleanly; want it cut by the drain")
		}
	}
	if open := r.Stats().Apps["shop"].Fleets["blue"].Upgraded; open != 0 {
		t.Errorf("%d WebSockets open after the drain", open)
	}
}

func TestSpreadDelay(t *testing.T) {
	for _, c := range []struct {
		i, n   int
		spread time.Duration
		want   time.Duration
	}{
		{0, 1, time.Second, 0}, {0, 4, time.Second, 0}, {1, 4, time.Second, 250 * time.Millisecond},
		{3, 4, time.Second, 750 * time.Millisecond}, {2, 4, 0, 0},
	} {
		if got := spreadDelay(c.i, c.n, c.spread); got != c.want {
			t.Errorf("spreadDelay(%d, %d, %s) = %s, want %s", c.i, c.n, c.spread, got, c.want)
		}
	}
}

func TestEdgeOpsValidation(t *testing.T) {
	cfg := &Config{Production: "127.0.0.1:1", Apps: map[string]*AppConfig{"shop": {
		MaxBody: -1, Timeout: Duration(time.Millisecond), DrainSpread: Duration(2 * time.Hour),
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{"127.0.0.1:2"}}}}}}
	err := cfg.Validate()
	for _, want := range []string{"apps.shop.max_body: -1 must not be negative", "apps.shop.timeout: 1ms is below the 10ms minimum",
		"apps.shop.drain_spread: 2h0m0s is out of range"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	for in, want := range map[string]string{"a\"b\\c": `"a\"b\\c"`, "\x01\n": `"\u0001\u000a"`, "é": `"é"`, "\xff": `"\ufffd"`} {
		got := string(appendJSONString(nil, []byte(in)))
		var back string
		if got != want || json.Unmarshal([]byte(got), &back) != nil {
			t.Errorf("%q → %s, want %s", in, got, want)
		}
	}
}
