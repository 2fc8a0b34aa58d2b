package server

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"bluegreen/internal/testwait"
)

func TestDescriptorsAreSplit(t *testing.T) {
	for _, c := range []struct {
		limit          uint64
		reserve, conns int
		tight          bool
	}{
		{64, 128, 16, true},
		{256, 128, 64, false},
		{1024, 128, 448, false},
		{20000, 1024, 4096, false},
		{1 << 20, 1024, 4096, false},
	} {
		b := splitDescriptors(descriptorBudget{limit: c.limit})
		if b.reserve != c.reserve || b.maxConns != c.conns || b.tight != c.tight {
			t.Errorf("limit %d: reserve %d, %d connections, tight %v; want %d, %d, %v", c.limit, b.reserve, b.maxConns, b.tight, c.reserve, c.conns, c.tight)
		}
		if !b.tight && int(c.limit)-b.maxConns*fdsPerConn < minReserve {
			t.Errorf("limit %d: the connections leave the engine less than %d", c.limit, minReserve)
		}
	}
	b, err := budgetDescriptors()
	if err != nil || b.limit == 0 || b.maxConns < minConns {
		t.Fatalf("budgetDescriptors = %+v, %v", b, err)
	}
}

// capped is an HTTP server on a loopback listener capped at max
// connections; its handler blocks while hold is set.
type capped struct {
	ln      *limitListener
	url     string
	entered chan struct{}
	release chan struct{}
	hold    atomic.Bool
}

func newCapped(t *testing.T, max int) *capped {
	t.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &capped{ln: newLimitListener(tcp, max, slog.New(slog.DiscardHandler)), url: "http://" + tcp.Addr().String(),
		entered: make(chan struct{}, 100), release: make(chan struct{})}
	srv := &http.Server{ConnState: c.ln.connState, ReadHeaderTimeout: time.Minute, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.hold.Load() {
			c.entered <- struct{}{}
			<-c.release
		}
		io.WriteString(w, "ok")
	})}
	go srv.Serve(c.ln)
	t.Cleanup(func() { srv.Close() })
	return c
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// At the cap, connections that send nothing make way for one that sends a
// request, the one that waited longest first.
func TestCapClosesConnectionsWithoutARequest(t *testing.T) {
	c := newCapped(t, 4)
	addr := strings.TrimPrefix(c.url, "http://")
	var idle []net.Conn
	for i := range 4 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if i == 3 {
			// A slow client: half a request line.
			io.WriteString(conn, "GET / HT")
		}
		idle = append(idle, conn)
		testwait.For(t, 10*time.Second, "the connection to be counted", func() bool { return c.ln.open() == i+1 })
	}
	if code, body, _ := get(t, c.url); code != 200 || body != "ok" {
		t.Fatalf("a request at the cap: %d %q", code, body)
	}
	// The first connection was the one closed.
	idle[0].SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := idle[0].Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("the longest waiting connection: read %v, want EOF", err)
	}
	if n := c.ln.open(); n > 4 {
		t.Errorf("%d connections open, cap 4", n)
	}
}

// When every connection runs a request, a new one is answered 503 at once,
// not left in the kernel's queue.
func TestCapRefusesWhenAllAreBusy(t *testing.T) {
	c := newCapped(t, 3)
	c.hold.Store(true)
	done := make(chan int, 3)
	for range 3 {
		go func() { code, _, _ := get(t, c.url); done <- code }()
		<-c.entered
	}
	code, body, h := get(t, c.url)
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") != "1" || !strings.Contains(body, `"code":"busy"`) {
		t.Errorf("a request with every connection busy: %d %v %s", code, h, body)
	}
	close(c.release)
	for range 3 {
		if code := <-done; code != 200 {
			t.Errorf("a held request: %d", code)
		}
	}
	c.hold.Store(false)
	testwait.For(t, 10*time.Second, "the connections to close", func() bool { return c.ln.open() == 0 })
	if code, _, _ := get(t, c.url); code != 200 {
		t.Errorf("after the busy ones: %d", code)
	}
}

// A body that does not come is cut after the body timeout; a body read to
// its end leaves the handler free to take its time.
func TestBodyDeadline(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const limit = 200 * time.Millisecond
	results := make(chan string, 1)
	srv := &http.Server{Handler: deadlinesAt(limit, time.Minute, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			results <- "read: " + err.Error()
			return
		}
		// Longer than the body's timeout: the request must live on.
		select {
		case <-r.Context().Done():
			results <- "canceled after the body"
		case <-time.After(2 * limit):
			results <- "body " + string(b)
		}
	}))}
	go srv.Serve(tcp)
	t.Cleanup(func() { srv.Close() })

	conn, err := net.Dial("tcp", tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf")
	if got := <-results; !strings.Contains(got, "i/o timeout") {
		t.Errorf("a stalled body: %s", got)
	}
	conn2, err := net.Dial("tcp", tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	io.WriteString(conn2, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nwhol")
	if got := <-results; got != "body whol" {
		t.Errorf("a whole body: %s", got)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn2), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("answer after a whole body: %v, %v", resp, err)
	}
}
