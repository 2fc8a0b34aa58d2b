package router

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"bluegreen/internal/testwait"
)

// These tests follow requests across the two ways a plain listener serves them:
// the event loop for plain requests (GETs, and requests with a small body and a
// Content-Length), the fasthttp server for every connection whose next request
// is anything else.

// echoBackend answers with the method, path and body it received.
func echoBackend(t *testing.T) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen-Host", r.Host)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), body)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// readResponses reads n responses from one connection, in order.
func readResponses(t *testing.T, c net.Conn, n int, method ...string) []string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	var out []string
	for i := range n {
		var req *http.Request
		if i < len(method) {
			req = &http.Request{Method: method[i]}
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("response %d: %v", i+1, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("response %d body: %v", i+1, err)
		}
		out = append(out, fmt.Sprintf("%d %s", resp.StatusCode, body))
	}
	return out
}

func TestPlainAndOtherRequestsShareAConnection(t *testing.T) {
	r := startRouter(t, oneFleet(echoBackend(t)))
	c, err := net.Dial("tcp", r.Config().Production)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Pipelined in one write: two the loop serves, one it hands over with the
	// bytes already read (a chunked body), and one more after it on the same
	// connection.
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"+
		"HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n"+
		"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"+
		"GET /d HTTP/1.1\r\nHost: x\r\n\r\n")
	got := readResponses(t, c, 4, "GET", "HEAD", "POST", "GET")
	want := []string{"200 GET /a ", "200 ", "200 POST /c hello", "200 GET /d "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
	// The connection is the fasthttp server's now; it still serves.
	io.WriteString(c, "GET /e HTTP/1.1\r\nHost: x\r\n\r\n")
	if got := readResponses(t, c, 1); got[0] != "200 GET /e " {
		t.Fatalf("after the hand-over: %q", got)
	}
}

func TestHeadArrivingInPieces(t *testing.T) {
	r := startRouter(t, oneFleet(echoBackend(t)))
	c, err := net.Dial("tcp", r.Config().Production)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "GET /pieces?x=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"
	for i := range len(req) {
		if _, err := c.Write([]byte{req[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if got := readResponses(t, c, 1); got[0] != "200 GET /pieces?x=1 " {
		t.Fatalf("got %q", got)
	}
}

func TestConnectionCloseIsHonoured(t *testing.T) {
	r := startRouter(t, oneFleet(echoBackend(t)))
	c, err := net.Dial("tcp", r.Config().Production)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	all, err := io.ReadAll(c) // ends when the router closes the connection
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(all, []byte("Connection: close")) || !bytes.HasSuffix(all, []byte("GET /last ")) {
		t.Fatalf("got %q", all)
	}
}

// TestResponseFramings passes every framing an upstream may use: chunked with
// trailers, until close (re-chunked for the client, whose connection stays
// open), a body larger than the loop's buffer, and a 1xx before the answer.
func TestResponseFramings(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB
	up := upstreamServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			switch req.URL.Path {
			case "/chunked":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"+
					"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n")
			case "/until-close":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this until the end")
				return
			case "/big":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(big))+"\r\n\r\n")
				io.WriteString(c, big)
			case "/early-hints":
				io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			case "/hop-by-hop":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: X-Private\r\nX-Private: secret\r\nKeep-Alive: timeout=5\r\nX-Request-Id: upstream\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n")
			}
		}
	})
	r := startRouter(t, oneFleet(up))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()

	resp, body := get(t, client, prodURL(r)+"/chunked")
	if body != "hello world" || resp.Trailer.Get("X-Sum") != "42" || len(resp.TransferEncoding) == 0 {
		t.Fatalf("chunked: %q, trailer %q, encoding %v", body, resp.Trailer.Get("X-Sum"), resp.TransferEncoding)
	}
	resp, body = get(t, client, prodURL(r)+"/until-close")
	if body != "all of this until the end" || resp.Close {
		t.Fatalf("until close: %q (client connection closed: %v)", body, resp.Close)
	}
	// The slow reader makes the router wait for the client, not buffer the body.
	req, _ := http.NewRequest("GET", prodURL(r)+"/big", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	resp.Body.Close()
	if got.String() != big {
		t.Fatalf("big body: got %d bytes, want %d, equal %v", got.Len(), len(big), got.String() == big)
	}
	resp, body = get(t, client, prodURL(r)+"/early-hints")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("after a 103: %d %q", resp.StatusCode, body)
	}
	resp, _ = get(t, client, prodURL(r)+"/hop-by-hop")
	h := resp.Header
	if h.Get("X-Private") != "" || h.Get("Keep-Alive") != "" || h.Get("X-Request-Id") == "upstream" || h.Get("X-Request-Id") == "" || len(h["Set-Cookie"]) != 2 {
		t.Fatalf("response fields: %v", h)
	}
}

func TestUpstreamDyingMidBodyCutsTheClient(t *testing.T) {
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nonly a little")
	})
	r := startRouter(t, oneFleet(up))
	c, err := net.Dial("tcp", r.Config().Production)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	all, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("the client connection was not closed: %v", err)
	}
	if !bytes.HasSuffix(all, []byte("only a little")) {
		t.Fatalf("got %q", all)
	}
	testwait.For(t, 5*time.Second, "the exchange to be counted as over", func() bool {
		return r.Stats().Apps["shop"].Fleets["blue"].InFlight == 0
	})
}

func TestClientLeavingMidRequestEndsTheExchange(t *testing.T) {
	release := make(chan struct{})
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		<-release
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	r := startRouter(t, oneFleet(up))
	c, err := net.Dial("tcp", r.Config().Production)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	testwait.For(t, 5*time.Second, "the request to be in flight", func() bool {
		return r.Stats().Apps["shop"].Fleets["blue"].InFlight == 1
	})
	c.Close()
	close(release)
	testwait.For(t, 5*time.Second, "the exchange to end", func() bool {
		return r.Stats().Apps["shop"].Fleets["blue"].InFlight == 0
	})
	if got := r.Stats().Apps["shop"].Fleets["blue"].Totals.ByClass["2xx"]; got != 1 {
		t.Fatalf("the answer the client left before is counted as %d 2xx", got)
	}
}

func TestTargetByNameIsServed(t *testing.T) {
	// A target named by host name is connected to by the fasthttp path, which
	// resolves names; the loop only connects to addresses.
	addr := echoBackend(t)
	_, port, _ := net.SplitHostPort(addr)
	r := startRouter(t, oneFleet("localhost:"+port))
	resp, body := get(t, &http.Client{}, prodURL(r)+"/by-name")
	if resp.StatusCode != 200 || body != "GET /by-name " {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}

func TestListenerRemovedWhileRequestsRun(t *testing.T) {
	release := make(chan struct{})
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		<-release
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone")
	})
	cfg := oneFleet(up)
	other := freeAddr(t)
	cfg.Apps["shop"].Production = other
	r := startRouter(t, cfg)
	busy, err := net.Dial("tcp", other)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	idle, err := net.Dial("tcp", other)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(busy, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	testwait.For(t, 5*time.Second, "the request to be in flight", func() bool {
		return r.Stats().Apps["shop"].Fleets["blue"].InFlight == 1
	})
	cfg = r.Config()
	cfg.Apps["shop"].Production = ""
	if _, err := r.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	// The idle connection is closed; the busy one gets its whole answer, then
	// is closed (ReadAll returns at the end of the stream).
	idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := idle.Read(make([]byte, 1)); err == nil {
		t.Fatalf("idle connection still open (read %d bytes)", n)
	}
	close(release)
	busy.SetReadDeadline(time.Now().Add(10 * time.Second))
	all, err := io.ReadAll(busy)
	if err != nil || !bytes.HasSuffix(all, []byte("done")) {
		t.Fatalf("busy connection: %q, %v", all, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if c, err := (&net.Dialer{}).DialContext(ctx, "tcp", other); err == nil {
		c.Close()
		t.Fatal("the removed listener still accepts")
	}
}

func TestSlowHeadsAndIdleConnectionsAreClosed(t *testing.T) {
	h, i := headTimeout, idleTimeout
	t.Cleanup(func() { headTimeout, idleTimeout = h, i }) // after the router's shutdown
	headTimeout, idleTimeout = 500*time.Millisecond, 1500*time.Millisecond
	r := startRouter(t, oneFleet(echoBackend(t)))
	dial := func() net.Conn {
		c, err := net.Dial("tcp", r.Config().Production)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	silent, partial, idle := dial(), dial(), dial()
	io.WriteString(partial, "GET /slow HTTP/1.1\r\nHost: x\r\n")
	io.WriteString(idle, "GET /once HTTP/1.1\r\nHost: x\r\n\r\n")
	if got := readResponses(t, idle, 1); got[0] != "200 GET /once " {
		t.Fatalf("got %q", got)
	}
	// A connection that never sends is closed without an answer; a head that
	// does not complete in time gets a 408; an idle keep-alive connection is
	// closed after the idle timeout.
	if all, err := io.ReadAll(silent); err != nil || len(all) != 0 {
		t.Fatalf("silent connection: %q, %v", all, err)
	}
	all, err := io.ReadAll(partial)
	if err != nil || !bytes.HasPrefix(all, []byte("HTTP/1.1 408 ")) || !bytes.Contains(all, []byte("did not arrive within 500ms")) {
		t.Fatalf("partial head: %q, %v", all, err)
	}
	start := time.Now()
	if _, err := io.ReadAll(idle); err != nil {
		t.Fatalf("idle connection: %v", err)
	}
	if time.Since(start) < 500*time.Millisecond {
		t.Fatalf("the idle connection was closed after %s, before its idle timeout", time.Since(start))
	}
}

// countingHandler counts the log records whose message starts with prefix.
type countingHandler struct {
	prefix string
	n      *atomic.Int64
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, h.prefix) {
		h.n.Add(1)
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// TestHelperClientGet is not a test of its own: TestAcceptPausesWhenDescriptorsRunOut
// runs the test binary with it as a client in another process, which waits for
// a line on its standard input, then GETs the URL and prints the status.
func TestHelperClientGet(t *testing.T) {
	url := os.Getenv("BLUEGREEN_TEST_GET")
	if url == "" {
		t.Skip("a helper process of TestAcceptPausesWhenDescriptorsRunOut")
	}
	bufio.NewReader(os.Stdin).ReadString('\n')
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Get(url)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	resp.Body.Close()
	fmt.Println("status:", resp.StatusCode)
}

func TestAcceptPausesWhenDescriptorsRunOut(t *testing.T) {
	var warnings atomic.Int64
	cfg := oneFleet(echoBackend(t))
	cfg.Production, cfg.Test = freeAddr(t), freeAddr(t)
	r := New(Options{Logger: slog.New(countingHandler{"accept failed", &warnings})})
	if _, err := r.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Shutdown(ctx)
	})
	// The client is another process, so that it can connect while this one
	// has no descriptor left for the router to accept it with.
	client := exec.Command(os.Args[0], "-test.run=^TestHelperClientGet$")
	client.Env = append(os.Environ(), "BLUEGREEN_TEST_GET="+prodURL(r)+"/after")
	stdin, err := client.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	client.Stdout = &out
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	// A new descriptor takes the lowest free number, and none may be at or
	// above the limit: the number a probe gets is the limit that leaves none.
	probe, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(probe.Fd())
	probe.Close()
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "go\n")
	testwait.For(t, 10*time.Second, "the router to find no descriptor for the new connection", func() bool {
		return warnings.Load() > 0
	})
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if err := client.Wait(); err != nil {
		t.Fatalf("client: %v: %s", err, out.String())
	}
	if !strings.Contains(out.String(), "status: 200") {
		t.Fatalf("the connection was not served once descriptors were back: %s", out.String())
	}
	// A listener that stays readable must not make the loop spin on accept.
	if n := warnings.Load(); n > 4 {
		t.Fatalf("%d accept warnings: the loop kept retrying instead of pausing", n)
	}
}
