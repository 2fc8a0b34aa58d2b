package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

const (
	maxSlow        = 10 * time.Minute
	defaultEvery   = 100 * time.Millisecond
	minEvery       = time.Millisecond
	maxEvery       = time.Hour
	maxWSMessage   = 1 << 20
	wsWriteTimeout = 5 * time.Second
)

// app holds the handlers' shared state.
type app struct {
	cfg     config
	log     *log.Logger
	started time.Time // when listening began; HELLO_FAIL_HEALTH_AFTER counts from here

	requests atomic.Int64  // requests to / and /slow so far, for HELLO_ERROR_RATE
	counts   counts        // their answers, for GET /metrics
	stopping chan struct{} // closed when a graceful stop begins
	sockets  sync.WaitGroup
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(a.cfg.healthPath, a.healthz)
	mux.HandleFunc("/slow", a.slow)
	mux.HandleFunc("/sse", a.sse)
	mux.HandleFunc("/ws", a.ws)
	mux.HandleFunc("GET /metrics", a.metrics)
	mux.HandleFunc("/", a.hello)
	return a.identify(mux)
}

// identify sets X-Version, and X-Instance and X-Fleet when known, on every answer.
func (a *app) identify(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Version", a.cfg.version)
		if a.cfg.instance != "" {
			h.Set("X-Instance", a.cfg.instance)
		}
		if a.cfg.fleet != "" {
			h.Set("X-Fleet", a.cfg.fleet)
		}
		next.ServeHTTP(w, r)
	})
}

// failNext counts a request to / or /slow and reports whether HELLO_ERROR_RATE
// makes it fail: the n-th fails when floor(n*rate) > floor((n-1)*rate).
func (a *app) failNext() bool {
	if a.cfg.errorPPM == 0 {
		return false
	}
	n := a.requests.Add(1)
	return n*a.cfg.errorPPM/1e6 > (n-1)*a.cfg.errorPPM/1e6
}

func (a *app) hello(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/health") {
		http.NotFound(w, r) // not this revision's health path
		return
	}
	fail := a.failNext()
	if !wait(r.Context(), a.cfg.latency) {
		return
	}
	a.counts.answered(fail)
	if fail {
		http.Error(w, "failing on purpose (HELLO_ERROR_RATE)", http.StatusInternalServerError)
		return
	}
	fmt.Fprintf(w, "hello from %s\n", a.cfg.version)
}

func (a *app) healthz(w http.ResponseWriter, _ *http.Request) {
	c := a.cfg
	if c.failHealth || (c.failHealthAfter >= 0 && time.Since(a.started) >= c.failHealthAfter) {
		http.Error(w, "failing on purpose (HELLO_FAIL_HEALTH)", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// slow answers after ?ms=N milliseconds, or gives up when the client leaves.
func (a *app) slow(w http.ResponseWriter, r *http.Request) {
	ms, err := strconv.ParseInt(r.URL.Query().Get("ms"), 10, 64)
	if err != nil || ms < 0 || time.Duration(ms)*time.Millisecond > maxSlow {
		http.Error(w, fmt.Sprintf("want ?ms=N with N from 0 to %d", maxSlow.Milliseconds()), http.StatusBadRequest)
		return
	}
	d := time.Duration(ms) * time.Millisecond
	fail := a.failNext()
	a.log.Printf("slow request: answering in %s", d)
	if !wait(r.Context(), d) {
		return
	}
	a.counts.answered(fail)
	if fail {
		http.Error(w, "failing on purpose (HELLO_ERROR_RATE)", http.StatusInternalServerError)
		return
	}
	fmt.Fprintf(w, "hello from %s after %s\n", a.cfg.version, d)
}

// sse streams ?n=N events (0 or absent: until the client leaves or a
// graceful stop begins), one every ?interval=D (default 100ms), the first at once.
func (a *app) sse(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, every := int64(0), defaultEvery
	var err error
	if s := q.Get("n"); s != "" {
		if n, err = strconv.ParseInt(s, 10, 64); err != nil || n < 0 {
			http.Error(w, "want ?n=N with N of 0 or more", http.StatusBadRequest)
			return
		}
	}
	if s := q.Get("interval"); s != "" {
		if every, err = time.ParseDuration(s); err != nil || every < minEvery || every > maxEvery {
			http.Error(w, fmt.Sprintf("want ?interval=D from %s to %s, such as 250ms", minEvery, maxEvery), http.StatusBadRequest)
			return
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	stop := a.stopping
	if n > 0 {
		stop = nil // a bounded stream runs to its end, like any request in flight
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := int64(1); n == 0 || i <= n; i++ {
		if i > 1 {
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			case <-stop:
				return
			}
		}
		_, err := fmt.Fprintf(w, "id: %d\nevent: hello\ndata: {\"version\":%q,\"seq\":%d}\n\n", i, a.cfg.version, i)
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return
		}
	}
}

// ws echoes every WebSocket message back with its type, text or binary. A
// graceful stop closes the connection with status 1001 (going away).
func (a *app) ws(w http.ResponseWriter, r *http.Request) {
	// Count the connection before it is taken over: http.Server.Shutdown
	// stops tracking it from then on, and the stop waits on this count.
	a.sockets.Add(1)
	defer a.sockets.Done()
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	c.SetReadLimit(maxWSMessage)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-a.stopping:
			c.Close(websocket.StatusGoingAway, "server stopping")
		case <-done:
		}
	}()
	ctx := context.Background()
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			c.CloseNow()
			return
		}
		wctx, cancel := context.WithTimeout(ctx, wsWriteTimeout)
		err = c.Write(wctx, typ, msg)
		cancel()
		if err != nil {
			c.CloseNow()
			return
		}
	}
}

// wait waits for d, and reports false if ctx ends first.
func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
