package router

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// HTTP/2 streams go through the handler of HTTP/1.1 requests: the same
// stickiness, weights, metrics, streaming and drains.
func TestH2RoutesAsHTTP1(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	now := time.Now()
	c, k := ca.issue(t, dir, "shop", []string{"shop.test"}, now.Add(-time.Hour), now.Add(time.Hour))
	blue, green := newBackend(t, "blue"), newBackend(t, "green")
	prod := freeAddr(t)
	cfg := twoFleets(blue.addr(), green.addr(), 50, 50)
	cfg.Production, cfg.Test = prod, ""
	cfg.Apps["shop"].TestFleet = ""
	cfg.Apps["shop"].Hosts = []string{"shop.test"}
	cfg.Apps["shop"].Sticky = true
	cfg.Apps["shop"].TLS = &AppTLS{CertFile: c, KeyFile: k}
	r := startRouter(t, cfg)
	cl := tlsClient(ca, prod, true)

	// Sticky: the first answer pins the client, the cookie keeps it there.
	resp, first := get(t, cl, "https://shop.test/")
	if resp.ProtoMajor != 2 {
		t.Fatalf("proto %s", resp.Proto)
	}
	var cookie string
	for _, ck := range resp.Cookies() {
		if ck.Name == "bg_shop" {
			cookie = ck.Name + "=" + ck.Value
		}
	}
	if cookie == "" {
		t.Fatalf("no sticky cookie over h2: %v", resp.Header)
	}
	for range 20 {
		if _, body := get(t, cl, "https://shop.test/", "Cookie", cookie); body != first {
			t.Fatalf("sticky client moved from %s to %s", first, body)
		}
	}
	// Weights: all of it to green.
	setWeights(t, r, "shop", map[string]int{"blue": 0, "green": 100})
	for range 10 {
		if _, body := get(t, cl, "https://shop.test/"); body != "green" {
			t.Fatalf("weight 100 to green, got %s", body)
		}
	}
	// Metrics count h2 requests per fleet.
	st := r.Stats().Apps["shop"].Fleets
	if n := st["blue"].Totals.Requests + st["green"].Totals.Requests; n != 31 {
		t.Fatalf("requests counted: %d, want 31", n)
	}
	// Request bodies stream upstream.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Header.Get("X-Forwarded-Proto")+" "+string(b))
	}))
	t.Cleanup(echo.Close)
	cfg = r.Config()
	cfg.Apps["shop"].Fleets["green"].Targets = []string{backendAddr(echo)}
	if _, err := r.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() {
		for range 3 {
			pw.Write([]byte(strings.Repeat("x", 40<<10)))
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", "https://shop.test/upload", pr)
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "https " + strings.Repeat("x", 120<<10); string(b) != want {
		t.Fatalf("streamed upload: %d bytes back, %q...", len(b), b[:min(len(b), 20)])
	}
}

func TestH2StreamsAndDrain(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	now := time.Now()
	c, k := ca.issue(t, dir, "shop", []string{"shop.test"}, now.Add(-time.Hour), now.Add(time.Hour))
	next := make(chan struct{})
	sse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 2 {
			io.WriteString(w, "data: "+string(rune('a'+i))+"\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(sse.Close)
	prod := freeAddr(t)
	r := startRouter(t, &Config{Production: prod, Apps: map[string]*AppConfig{"shop": {Hosts: []string{"shop.test"},
		TLS:    &AppTLS{CertFile: c, KeyFile: k},
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{backendAddr(sse)}}}}}})
	resp, err := tlsClient(ca, prod, true).Get("https://shop.test/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	// The first event arrives while the upstream still holds the second.
	if line, err := br.ReadString('\n'); err != nil || line != "data: a\n" {
		t.Fatalf("first event: %q %v", line, err)
	}
	if n := r.Stats().Apps["shop"].Fleets["blue"].Streaming; n != 1 {
		t.Fatalf("streams counted: %d", n)
	}
	// A drain whose deadline passes cuts the open stream and says so.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := r.Drain(ctx, DrainRequest{App: "shop", Fleet: "blue", Timeout: Duration(50 * time.Millisecond)})
	if err != nil || rep.Complete || rep.OpenStreams != 1 {
		t.Fatalf("drain: %+v %v", rep, err)
	}
	if _, err := io.ReadAll(br); err == nil {
		// The h2 stream ends with an error, or cleanly, once its upstream is cut.
		t.Log("stream ended cleanly after the cut")
	}
	close(next)
}
