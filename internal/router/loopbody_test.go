//go:build linux

package router

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"bluegreen/internal/testwait"
)

// Requests with a small body and a Content-Length are served by the event
// loop like plain GETs: read whole with their head, then sent upstream in one
// piece. These tests follow them, and the cases that still go to the fasthttp
// path.

// loopHeld is how many client connections of the production listener the
// event loops hold (not handed to the fasthttp server).
func loopHeld(t *testing.T, r *Router) int64 {
	t.Helper()
	r.mu.Lock()
	l := r.listeners[r.Config().Production]
	r.mu.Unlock()
	if l == nil || l.loop == nil {
		t.Fatal("the production listener has no event loop")
	}
	return l.loop.open.Load()
}

// rawEcho is an upstream that answers each request with the exact bytes it
// received, head and body; it reads bodies by their Content-Length. It counts
// the requests, and closes the connection after each answer when closeEach
// is set (without saying so, as a server whose keep-alive timer fired would),
// and then says so on closed.
type rawEcho struct {
	addr      string
	requests  atomic.Int64
	closeEach bool
	closed    chan struct{}
}

func newRawEcho(t *testing.T, closeEach bool) *rawEcho {
	t.Helper()
	e := &rawEcho{closeEach: closeEach, closed: make(chan struct{}, 100)}
	e.addr = upstreamServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			var head bytes.Buffer
			length := 0
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				head.WriteString(line)
				if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && strings.EqualFold(k, "Content-Length") {
					length, _ = strconv.Atoi(strings.TrimSpace(v))
				}
				if line == "\r\n" {
					break
				}
			}
			body := make([]byte, length)
			if _, err := io.ReadFull(br, body); err != nil {
				return
			}
			e.requests.Add(1)
			echo := head.String() + string(body)
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(echo), echo)
			if e.closeEach {
				c.Close()
				e.closed <- struct{}{}
				return
			}
		}
	})
	return e
}

func TestSmallBodiesStayOnTheLoop(t *testing.T) {
	up := newRawEcho(t, false)
	r := startRouter(t, oneFleet(up.addr))
	c, br := rawConn(t, r.Config().Production)
	json := `{"name": "GET / HTTP/1.1\r\nHost: x\r\n\r\n"}`
	// Pipelined in one write, a body holding what looks like a request among them.
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"+
		"POST /b HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\nContent-Length: "+strconv.Itoa(len(json))+"\r\n\r\n"+json+
		"PUT /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"+
		"POST /d HTTP/1.1\r\nHost: x\r\n\r\n"+
		"DELETE /e HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"+
		"GET /f HTTP/1.1\r\nHost: x\r\n\r\n")
	var got []string
	for range 6 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("after %d answers: %v", len(got), err)
		}
		b, _ := io.ReadAll(resp.Body)
		got = append(got, string(b))
	}
	want := []struct{ line, has, hasNot string }{
		{"GET /a HTTP/1.1", "", "Content-Length"},
		{"POST /b HTTP/1.1", "\r\ncontent-type: application/json\r\n", ""},
		{"PUT /c HTTP/1.1", "Content-Length: 5\r\n\r\nhello", ""},
		{"POST /d HTTP/1.1", "Content-Length: 0\r\n\r\n", ""},
		{"DELETE /e HTTP/1.1", "", "Content-Length"},
		{"GET /f HTTP/1.1", "", "Content-Length"},
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w.line+"\r\n") || !strings.Contains(got[i], w.has) ||
			(w.hasNot != "" && strings.Contains(got[i], w.hasNot)) {
			t.Errorf("request %d reached the upstream as %q", i+1, got[i])
		}
	}
	if !strings.HasSuffix(got[1], "\r\n\r\n"+json) || strings.Count(got[1], "Content-Length") != 1 ||
		!strings.Contains(got[1], "Content-Length: "+strconv.Itoa(len(json))+"\r\n") {
		t.Errorf("the JSON body reached the upstream as %q", got[1])
	}
	if n := up.requests.Load(); n != 6 {
		t.Errorf("the upstream saw %d requests, want 6", n)
	}
	if n := loopHeld(t, r); n != 1 {
		t.Errorf("the loops hold %d connections, want 1: a request with a small body was handed over", n)
	}
	tot := r.Stats().Apps["shop"].Fleets["blue"].Totals
	if tot.BytesIn != uint64(len(json)+5) {
		t.Errorf("bytes in %d, want %d", tot.BytesIn, len(json)+5)
	}
}

func TestBodyArrivingInPieces(t *testing.T) {
	r := startRouter(t, oneFleet(echoBackend(t)))
	c, br := rawConn(t, r.Config().Production)
	req := "POST /pieces HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
	for i := range len(req) {
		if _, err := c.Write([]byte{req[i]}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "POST /pieces hello world" {
		t.Fatalf("got %q", b)
	}
}

// A body that does not follow its head within a second is left to the
// fasthttp path, which gives it the body timeout: a slow upload is not cut at
// the head timeout, nor does it hold the loop.
func TestSlowBodyIsHandedOver(t *testing.T) {
	r := startRouter(t, oneFleet(echoBackend(t)))
	c, br := rawConn(t, r.Config().Production)
	io.WriteString(c, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
	testwait.For(t, 10*time.Second, "the loop to hand the connection over", func() bool {
		return loopHeld(t, r) == 0
	})
	io.WriteString(c, "world")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "POST /slow helloworld" {
		t.Fatalf("got %d %q", resp.StatusCode, b)
	}
	if code, body := roundTrip(t, c, br, "GET", "GET /next HTTP/1.1\r\nHost: x\r\n\r\n"); code != 200 || body != "GET /next " {
		t.Fatalf("the next request: %d %q", code, body)
	}
}

// A small body refused before it reaches a target (here: an unknown host)
// ends the connection, as a large one does: whatever follows is not taken for
// a request.
func TestRefusalWithASmallBodyClosesTheConnection(t *testing.T) {
	up := newHeaderEcho(t, 0)
	cfg := oneFleet(up.addr)
	cfg.Apps["shop"].Hosts = []string{"shop.example"}
	r := startRouter(t, cfg)
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: shop.example\r\n\r\n"
	out := rawExchange(t, r.Config().Production,
		"POST / HTTP/1.1\r\nHost: other.example\r\nContent-Length: 4\r\n\r\nabcd"+smuggled)
	if !strings.HasPrefix(out, "HTTP/1.1 404") || strings.Count(out, "HTTP/1.1 ") != 1 ||
		!strings.Contains(out, "Connection: close") || up.smuggled.Load() != 0 {
		t.Fatalf("a refused request with a body: %.300q, %d smuggled", out, up.smuggled.Load())
	}
}

// An upstream that closes each kept-alive connection after answering, without
// a Connection: close, leaves the router a pooled connection that is dead
// once the close has happened. A POST must never be lost on one (a 502) nor
// sent twice.
func TestPostsAreNotSentOnConnectionsTheUpstreamClosed(t *testing.T) {
	up := newRawEcho(t, true)
	r := startRouter(t, oneFleet(up.addr))
	c, br := rawConn(t, r.Config().Production)
	for i := range 20 {
		body := "n=" + strconv.Itoa(i)
		code, echo := roundTrip(t, c, br, "POST",
			"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
		if code != 200 || !strings.HasSuffix(echo, "\r\n\r\n"+body) {
			t.Fatalf("POST %d: %d %q", i, code, echo)
		}
		<-up.closed
	}
	if n := up.requests.Load(); n != 20 {
		t.Fatalf("the upstream received %d POSTs, want 20 (each exactly once)", n)
	}
}
