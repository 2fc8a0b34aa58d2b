package router

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"bluegreen/internal/testwait"
)

// gateSetup is a router serving shop (blue live, green on the test
// listener) and blog on another host, over plain HTTP (the event loop) or
// HTTPS with HTTP/2 (the goroutine path).
type gateSetup struct {
	r           *Router
	blue, green *fleetBackend
	blog        *fleetBackend
	client      *http.Client
	shop, other string       // production URLs of shop and blog
	testClient  *http.Client // reaches the test listener (plain only)
}

func newGateSetup(t *testing.T, h2 bool) *gateSetup {
	t.Helper()
	s := &gateSetup{blue: newBackend(t, "blue"), green: newBackend(t, "green"), blog: newBackend(t, "blog")}
	cfg := twoFleets(s.blue.addr(), s.green.addr(), 100, 0)
	cfg.Production, cfg.Test = freeAddr(t), freeAddr(t)
	cfg.Apps["shop"].Hosts = []string{"shop.test"}
	cfg.Apps["blog"] = &AppConfig{Hosts: []string{"blog.test"},
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{s.blog.addr()}}}}
	scheme := "http://"
	if h2 {
		dir := t.TempDir()
		ca := newTestCA(t)
		now := time.Now()
		c, k := ca.issue(t, dir, "edge", []string{"shop.test", "blog.test"}, now.Add(-time.Hour), now.Add(time.Hour))
		for _, a := range cfg.Apps {
			a.TLS = &AppTLS{CertFile: c, KeyFile: k}
		}
		s.client = tlsClient(ca, cfg.Production, true)
		scheme = "https://"
	} else {
		// Kept-alive connections: the requests after a pause come on
		// connections the event loop served before it.
		s.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DialContext: dialTo(cfg.Production)}}
		s.testClient = &http.Client{Transport: &http.Transport{DialContext: dialTo(cfg.Test)}}
	}
	s.shop, s.other = scheme+"shop.test/", scheme+"blog.test/"
	s.r = startRouter(t, cfg)
	return s
}

// dialTo makes a transport connect to addr whatever the URL's host.
func dialTo(addr string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

// apply changes shop's entry of the running table.
func (s *gateSetup) apply(t *testing.T, edit func(a *AppConfig)) {
	t.Helper()
	cfg := s.r.Config()
	edit(cfg.Apps["shop"])
	if _, err := s.r.Apply(cfg); err != nil {
		t.Fatal(err)
	}
}

func (s *gateSetup) held() int64 { return s.r.Stats().Apps["shop"].Held }

type answer struct {
	status int
	body   string
	hdr    http.Header
	err    error
}

func fetch(c *http.Client, url string, hdr ...string) answer {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: string(b), hdr: resp.Header, err: err}
}

// holdMany sends n requests to url at once and returns their answers once all came.
func holdMany(c *http.Client, url string, n int) <-chan []answer {
	out := make(chan []answer, 1)
	go func() {
		res := make([]answer, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { res[i] = fetch(c, url) })
		}
		wg.Wait()
		out <- res
	}()
	return out
}

func TestPauseHoldsUntilResume(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "h2"}[h2], func(t *testing.T) {
			s := newGateSetup(t, h2)
			if a := fetch(s.client, s.shop); a.err != nil || a.body != "blue" {
				t.Fatalf("before the pause: %+v", a)
			}
			if !h2 && loopHeld(t, s.r) != 1 {
				t.Fatalf("the event loops hold %d connections before the pause, want 1", loopHeld(t, s.r))
			}
			s.apply(t, func(a *AppConfig) { a.Pause = &PauseConfig{MaxWait: Duration(time.Minute)} })
			if got := s.r.Config().Apps["shop"].Pause; got.MaxHeld != DefaultPauseMaxHeld {
				t.Fatalf("max_held default: %+v", got)
			}
			const n = 20
			done := holdMany(s.client, s.shop, n)
			testwait.For(t, 10*time.Second, "20 held requests", func() bool { return s.held() == n })
			if hits := s.blue.hits.Load(); hits != 1 {
				t.Fatalf("held requests reached blue: %d hits", hits)
			}
			// Other apps, and the test listener, are not held.
			if a := fetch(s.client, s.other); a.err != nil || a.body != "blog" {
				t.Fatalf("blog while shop is paused: %+v", a)
			}
			if !h2 {
				if a := fetch(s.testClient, "http://shop.test/"); a.err != nil || a.body != "green" {
					t.Fatalf("test listener while paused: %+v", a)
				}
			}
			// Green becomes live while paused: the held requests go to it.
			s.apply(t, func(a *AppConfig) {
				a.Fleets["blue"].Weight, a.Fleets["green"].Weight = 0, 100
			})
			if got := s.held(); got != n {
				t.Fatalf("a table that keeps the pause released requests: %d held", got)
			}
			s.apply(t, func(a *AppConfig) { a.Pause = nil })
			for i, a := range <-done {
				if a.err != nil || a.status != 200 || a.body != "green" {
					t.Fatalf("held request %d: %+v", i, a)
				}
			}
			if got := s.held(); got != 0 {
				t.Fatalf("held after resume: %d", got)
			}
			if a := fetch(s.client, s.shop); a.body != "green" {
				t.Fatalf("after resume: %+v", a)
			}
		})
	}
}

func TestPauseMaxWait(t *testing.T) {
	s := newGateSetup(t, false)
	s.apply(t, func(a *AppConfig) { a.Pause = &PauseConfig{MaxWait: Duration(20 * time.Millisecond)} })
	a := fetch(s.client, s.shop, "Accept", "application/json")
	if a.err != nil || a.status != http.StatusServiceUnavailable || a.hdr.Get("Retry-After") != "1" {
		t.Fatalf("held past max_wait: %+v", a)
	}
	var body struct {
		Code       string `json:"code"`
		App        string `json:"app"`
		Message    string `json:"message"`
		RetryAfter int    `json:"retry_after_seconds"`
	}
	if err := json.Unmarshal([]byte(a.body), &body); err != nil || body.Code != "paused" || body.App != "shop" ||
		!strings.Contains(body.Message, "waited 20ms") || body.RetryAfter != 1 {
		t.Fatalf("JSON answer %q: %+v %v", a.body, body, err)
	}
	if s.blue.hits.Load() != 0 || s.held() != 0 {
		t.Fatalf("hits %d, held %d", s.blue.hits.Load(), s.held())
	}
}

func TestPauseMaxHeld(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "h2"}[h2], func(t *testing.T) {
			s := newGateSetup(t, h2)
			s.apply(t, func(a *AppConfig) { a.Pause = &PauseConfig{MaxWait: Duration(time.Minute), MaxHeld: 2} })
			done := holdMany(s.client, s.shop, 2)
			testwait.For(t, 10*time.Second, "2 held requests", func() bool { return s.held() == 2 })
			a := fetch(s.client, s.shop)
			if a.err != nil || a.status != http.StatusServiceUnavailable || a.hdr.Get("Retry-After") != "60" ||
				!strings.Contains(a.body, "already holds 2 requests") {
				t.Fatalf("third request: %+v", a)
			}
			if got := s.held(); got != 2 {
				t.Fatalf("held after the refusal: %d", got)
			}
			s.apply(t, func(a *AppConfig) { a.Pause = nil })
			for i, a := range <-done {
				if a.err != nil || a.status != 200 || a.body != "blue" {
					t.Fatalf("held request %d: %+v", i, a)
				}
			}
		})
	}
}

func TestMaintenancePage(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "h2"}[h2], func(t *testing.T) {
			s := newGateSetup(t, h2)
			if a := fetch(s.client, s.shop); a.body != "blue" {
				t.Fatalf("before: %+v", a)
			}
			s.apply(t, func(a *AppConfig) {
				a.Maintenance = &MaintenanceConfig{Message: "Back at <b>10:00</b> UTC."}
			})
			html := fetch(s.client, s.shop, "Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
			if html.status != 503 || html.hdr.Get("Retry-After") != "60" || !strings.HasPrefix(html.hdr.Get("Content-Type"), "text/html") ||
				!strings.Contains(html.body, "Back at &lt;b&gt;10:00&lt;/b&gt; UTC.") || !strings.Contains(html.body, "<title>Down for maintenance</title>") {
				t.Fatalf("browser: %+v", html)
			}
			js := fetch(s.client, s.shop, "Accept", "application/json")
			if js.status != 503 || js.hdr.Get("Content-Type") != "application/json" ||
				!strings.Contains(js.body, `"code":"maintenance"`) || !strings.Contains(js.body, `"retry_after_seconds":60`) {
				t.Fatalf("JSON: %+v", js)
			}
			txt := fetch(s.client, s.shop)
			if txt.status != 503 || txt.body != "Back at <b>10:00</b> UTC.\n" || txt.hdr.Get("Cache-Control") != "no-store" {
				t.Fatalf("text: %+v", txt)
			}
			if a := fetch(s.client, s.other); a.body != "blog" {
				t.Fatalf("blog during shop's maintenance: %+v", a)
			}
			if !h2 {
				if a := fetch(s.testClient, "http://shop.test/"); a.body != "green" {
					t.Fatalf("test listener during maintenance: %+v", a)
				}
			}
			if hits := s.blue.hits.Load(); hits != 1 {
				t.Fatalf("blue got %d requests, want only the first", hits)
			}
			s.apply(t, func(a *AppConfig) { a.Maintenance = nil })
			if a := fetch(s.client, s.shop); a.status != 200 || a.body != "blue" {
				t.Fatalf("after maintenance: %+v", a)
			}
		})
	}
}

// Maintenance set while requests are held answers them with its page.
func TestPauseThenMaintenance(t *testing.T) {
	s := newGateSetup(t, false)
	s.apply(t, func(a *AppConfig) { a.Pause = &PauseConfig{MaxWait: Duration(time.Minute)} })
	done := holdMany(s.client, s.shop, 3)
	testwait.For(t, 10*time.Second, "3 held requests", func() bool { return s.held() == 3 })
	s.apply(t, func(a *AppConfig) { a.Pause, a.Maintenance = nil, &MaintenanceConfig{} })
	for i, a := range <-done {
		if a.status != 503 || !strings.Contains(a.body, DefaultMaintenanceMessage) {
			t.Fatalf("held request %d: %+v", i, a)
		}
	}
}

// A router shutting down answers the requests it holds at once.
func TestPauseShutdownAnswersHeld(t *testing.T) {
	s := newGateSetup(t, false)
	s.apply(t, func(a *AppConfig) { a.Pause = &PauseConfig{MaxWait: Duration(time.Hour)} })
	done := holdMany(s.client, s.shop, 2)
	testwait.For(t, 10*time.Second, "2 held requests", func() bool { return s.held() == 2 })
	go s.r.Shutdown(t.Context())
	for i, a := range <-done {
		if a.status != 503 || !strings.Contains(a.body, "shutting down") {
			t.Fatalf("held request %d: %+v", i, a)
		}
	}
}

func TestGateValidation(t *testing.T) {
	cfg := oneFleet("127.0.0.1:1")
	cfg.Production = "127.0.0.1:1"
	a := cfg.Apps["shop"]
	a.Pause = &PauseConfig{MaxWait: Duration(2 * time.Hour), MaxHeld: -1}
	a.Maintenance = &MaintenanceConfig{Message: "bad\x00", RetryAfter: Duration(1500 * time.Millisecond)}
	err := cfg.Validate()
	for _, want := range []string{
		"apps.shop: pause and maintenance are both set",
		"apps.shop.pause.max_wait: 2h0m0s is out of range 1ms..1h0m0s",
		"apps.shop.pause.max_held: -1 is out of range 1..100000",
		"apps.shop.maintenance.retry_after: 1.5s must be whole seconds from 1s to 24h",
		"apps.shop.maintenance.message: control character U+0000 at byte 3",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}

func TestAcceptKind(t *testing.T) {
	for accept, want := range map[string]string{
		"":                                  "text",
		"*/*":                               "text",
		"application/json":                  "json",
		"application/problem+json, */*":     "json",
		"text/html,application/xhtml+xml":   "html",
		"text/html, application/json;q=0.9": "html",
		"application/json, text/html":       "json",
	} {
		if got := acceptKind([]byte(accept)); got != want {
			t.Errorf("Accept %q: %s, want %s", accept, got, want)
		}
	}
}

// An HTTP/2 client that gives up while held frees its place at once.
func TestPauseH2ClientGivesUp(t *testing.T) {
	s := newGateSetup(t, true)
	s.apply(t, func(a *AppConfig) { a.Pause = &PauseConfig{MaxWait: Duration(time.Hour), MaxHeld: 1} })
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.shop, nil)
		resp, err := s.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		gaveUp <- err
	}()
	testwait.For(t, 10*time.Second, "the request held", func() bool { return s.held() == 1 })
	cancel()
	if err := <-gaveUp; err == nil {
		t.Fatal("the cancelled request got an answer")
	}
	testwait.For(t, 10*time.Second, "its place freed", func() bool { return s.held() == 0 })
	done := holdMany(s.client, s.shop, 1)
	testwait.For(t, 10*time.Second, "the next request held", func() bool { return s.held() == 1 })
	s.apply(t, func(a *AppConfig) { a.Pause = nil })
	if a := (<-done)[0]; a.err != nil || a.body != "blue" {
		t.Fatalf("the next request: %+v", a)
	}
}

// The answers of a gate are in the access log of an app that keeps one.
func TestGateAnswersAreLogged(t *testing.T) {
	be := newBackend(t, "blue")
	var log lockedBuffer
	prod := freeAddr(t)
	cfg := &Config{Production: prod, Apps: map[string]*AppConfig{"shop": {Hosts: []string{"shop.test"}, AccessLog: true,
		Maintenance: &MaintenanceConfig{}, Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{be.addr()}}}}}}
	startRouterWith(t, cfg, Options{AccessLog: &log})
	resp, _ := oneExchange(t, prod, "GET /cart HTTP/1.1\r\nHost: shop.test\r\nX-Request-Id: trace-9\r\n\r\n")
	if resp.StatusCode != 503 {
		t.Fatalf("maintenance: %s", resp.Status)
	}
	testwait.For(t, 10*time.Second, "an access line", func() bool { return len(log.lines(t)) >= 1 })
	l := log.lines(t)[0]
	if l["app"] != "shop" || l["status"] != 503.0 || l["fleet"] != "" || l["request_id"] != "trace-9" || l["path"] != "/cart" {
		t.Fatalf("access line: %v", l)
	}
}
