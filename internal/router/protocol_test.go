package router

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"bluegreen/internal/testwait"
	"bluegreen/internal/testws"
)

// protoBackend serves what the protocol tests need: echo of headers, streaming
// in both directions, SSE, WebSocket echo and slow answers.
func protoBackend(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		for k, v := range r.Header {
			fmt.Fprintf(w, "%s: %s\n", k, strings.Join(v, ","))
		}
		fmt.Fprintf(w, "Host: %s\n", r.Host)
	})
	mux.HandleFunc("/hop", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Private")
		w.Header().Set("X-Private", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Public", "yes")
	})
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		fmt.Fprint(w, n)
	})
	mux.HandleFunc("/download", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		}
		buf := make([]byte, 64<<10)
		for n > 0 {
			k := min(n, int64(len(buf)))
			if _, err := w.Write(buf[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	mux.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
				return
			}
			f.Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	mux.HandleFunc("/ws", testws.EchoServer)
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			io.WriteString(w, "slow done")
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "abc123")
	})
	mux.HandleFunc("/reject", func(w http.ResponseWriter, r *http.Request) {
		// answers without reading the body
		w.WriteHeader(http.StatusRequestEntityTooLarge)
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func oneFleet(addr string) *Config {
	return &Config{Apps: map[string]*AppConfig{"shop": {
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{addr}}},
	}}}
}

func backendAddr(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func TestForwardingHeaders(t *testing.T) {
	be := protoBackend(t)
	r := startRouter(t, oneFleet(backendAddr(be)))
	c := &http.Client{}
	resp, body := get(t, c, prodURL(r)+"/headers",
		"X-Forwarded-For", "6.6.6.6", "X-Forwarded-Host", "evil", "X-Forwarded-Proto", "https",
		"Connection", "X-Hop", "X-Hop", "drop me", "Proxy-Authorization", "Basic x", "X-Keep", "kept",
		"X-Request-Id", "trace-123")
	for _, want := range []string{"X-Forwarded-For: 127.0.0.1\n", "X-Forwarded-Proto: http\n", "X-Keep: kept\n",
		"X-Request-Id: trace-123\n", "X-Forwarded-Host: " + r.Config().Production + "\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("upstream did not get %q in:\n%s", want, body)
		}
	}
	for _, bad := range []string{"6.6.6.6", "evil", "X-Hop", "Proxy-Authorization"} {
		if strings.Contains(body, bad) {
			t.Errorf("upstream got %q, which must be dropped:\n%s", bad, body)
		}
	}
	if resp.Header.Get("X-Request-Id") != "trace-123" {
		t.Errorf("response request ID %q", resp.Header.Get("X-Request-Id"))
	}

	// A request without an ID gets one, on both sides.
	resp, body = get(t, c, prodURL(r)+"/headers")
	id := resp.Header.Get("X-Request-Id")
	if len(id) != 16 || !strings.Contains(body, "X-Request-Id: "+id) {
		t.Errorf("generated request ID %q not passed upstream:\n%s", id, body)
	}

	// Hop-by-hop response headers stay behind.
	resp, _ = get(t, c, prodURL(r)+"/hop")
	if resp.Header.Get("X-Private") != "" || resp.Header.Get("Keep-Alive") != "" || resp.Header.Get("X-Public") != "yes" {
		t.Errorf("response headers: %v", resp.Header)
	}

	// Trusted forwarding appends instead of replacing.
	cfg := r.Config()
	cfg.TrustForwarded = true
	if _, err := r.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	_, body = get(t, c, prodURL(r)+"/headers", "X-Forwarded-For", "6.6.6.6", "X-Forwarded-Proto", "https")
	if !strings.Contains(body, "X-Forwarded-For: 6.6.6.6, 127.0.0.1\n") || !strings.Contains(body, "X-Forwarded-Proto: https\n") {
		t.Errorf("trusted forwarding headers wrong:\n%s", body)
	}
}

func TestSSEIsFlushedImmediately(t *testing.T) {
	be := protoBackend(t)
	r := startRouter(t, oneFleet(backendAddr(be)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, prodURL(r)+"/sse", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	// Each event arrives on its own: the reader would block forever on a buffered stream.
	for i := range 3 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line != fmt.Sprintf("data: %d\n", i) {
			t.Fatalf("event %d: %q", i, line)
		}
		br.ReadString('\n')
	}
}

func TestWebSocketPassthrough(t *testing.T) {
	be := protoBackend(t)
	r := startRouter(t, oneFleet(backendAddr(be)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+r.Config().Production+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for i := range 5 {
		msg := fmt.Sprintf("hello %d", i)
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil || string(got) != msg {
			t.Fatalf("echo %d: %q %v", i, got, err)
		}
	}
	if up := r.Stats().Apps["shop"].Fleets["blue"].Upgraded; up != 1 {
		t.Fatalf("open upgraded connections %d, want 1", up)
	}
	c.Close(websocket.StatusNormalClosure, "")
	testwait.For(t, 5*time.Second, "upgraded count back to 0", func() bool {
		return r.Stats().Apps["shop"].Fleets["blue"].Upgraded == 0
	})
}

func TestTrailersPassThrough(t *testing.T) {
	be := protoBackend(t)
	r := startRouter(t, oneFleet(backendAddr(be)))
	resp, err := http.Get(prodURL(r) + "/trailers")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := resp.Trailer.Get("X-Checksum"); got != "abc123" {
		t.Fatalf("trailer %q", got)
	}
}

// rawExchange writes raw bytes to addr and returns what comes back until the
// connection closes or the read deadline passes.
func rawExchange(t *testing.T, addr string, parts ...string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	for _, p := range parts {
		if _, err := io.WriteString(c, p); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestExpectContinue(t *testing.T) {
	be := protoBackend(t)
	r := startRouter(t, oneFleet(backendAddr(be)))
	addr := r.Config().Production

	// The router tells the client to go on, then passes the body and the answer.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 Continue") {
		t.Fatalf("before sending the body, got %q %v; want 100 Continue", line, err)
	}
	br.ReadString('\n')
	io.WriteString(c, "hello")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(got) != "5" {
		t.Fatalf("after the body: %d %q", resp.StatusCode, got)
	}

	// An upstream that refuses a large upload without reading it: the refusal
	// reaches the client while it is still sending, and the connection closes.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c2, "POST /reject HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\nExpect: 100-continue\r\n\r\n")
	br2 := bufio.NewReader(c2)
	if line, _ := br2.ReadString('\n'); !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("got %q, want 100 Continue", line)
	}
	br2.ReadString('\n')
	c2.Write(make([]byte, 1<<20))
	resp, err = http.ReadResponse(br2, nil)
	if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Fatalf("refused upload: %v %v", resp, err)
	}
}

func TestDrainLetsSlowWorkFinishAndClosesTheRestAtDeadline(t *testing.T) {
	be := protoBackend(t)
	green := newBackend(t, "green")
	cfg := twoFleets(backendAddr(be), green.addr(), 100, 0)
	r := startRouter(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Open on blue: a slow request, a WebSocket and an SSE stream.
	slow := make(chan string, 1)
	go func() {
		resp, err := http.Get(prodURL(r) + "/slow?ms=400")
		if err != nil {
			slow <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- fmt.Sprint(resp.StatusCode, " ", string(b))
	}()
	ws, _, err := websocket.Dial(ctx, "ws://"+r.Config().Production+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	sreq, _ := http.NewRequestWithContext(ctx, http.MethodGet, prodURL(r)+"/sse", nil)
	sse, err := http.DefaultClient.Do(sreq)
	if err != nil {
		t.Fatal(err)
	}
	defer sse.Body.Close()
	testwait.For(t, 5*time.Second, "three open requests on blue", func() bool {
		return r.Stats().Apps["shop"].Fleets["blue"].InFlight == 3
	})

	// Blue takes no new work from now on; production has only green.
	setWeights(t, r, "shop", map[string]int{"blue": 0, "green": 100})
	rep, err := r.Drain(ctx, DrainRequest{App: "shop", Fleet: "blue", Timeout: Duration(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if got := <-slow; got != "200 slow done" {
		t.Fatalf("slow request during drain: %s", got)
	}
	if rep.Complete || rep.OpenConnections != 1 || rep.OpenStreams != 1 || rep.OpenRequests != 1 {
		t.Fatalf("drain report %+v: want the WebSocket and the SSE stream open at the deadline", rep)
	}
	if rep.Waited.D() < time.Second {
		t.Fatalf("drain gave up after %s, before its deadline", rep.Waited.D())
	}
	// What was open has been cut: the reads end with an error of the connection,
	// not with this test's own timeout.
	if _, _, err := ws.Read(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("WebSocket after the drain deadline: %v (test context: %v)", err, ctx.Err())
	}
	if _, err := io.Copy(io.Discard, sse.Body); err == nil || ctx.Err() != nil {
		t.Fatalf("SSE stream after the drain deadline: %v (test context: %v); it should have been cut", err, ctx.Err())
	}
	if !r.Routes().Table.Apps["shop"].Fleets["blue"].Fenced {
		t.Fatal("blue not fenced after drain")
	}
	if _, got := get(t, &http.Client{}, prodURL(r)); got != "green" {
		t.Fatalf("after drain, production went to %q", got)
	}

	// A drain with nothing open completes at once.
	rep, err = r.Drain(ctx, DrainRequest{App: "shop", Fleet: "blue", Timeout: Duration(time.Minute)})
	if err != nil || !rep.Complete || rep.Waited.D() > 10*time.Second {
		t.Fatalf("second drain: %+v %v", rep, err)
	}
}

func TestGarbageAnswerDuringUploadClosesTheClientConnection(t *testing.T) {
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		io.WriteString(c, "this is not HTTP\r\n\r\n")
		io.Copy(io.Discard, br) // keep reading so the upload is not what fails
	})
	r := startRouter(t, oneFleet(up))
	c, err := net.Dial("tcp", r.Config().Production)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
	c.Write(make([]byte, 256<<10))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusBadGateway || !resp.Close {
		t.Fatalf("got %d, close %v: want 502 and the connection closed", resp.StatusCode, resp.Close)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the client connection stayed open after its upload was cut")
	}
}
