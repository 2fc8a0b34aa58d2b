package router

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const drainBlue = `{"app":"shop","fleet":"blue","timeout":"0s"}`

// fenced reports whether the fleet is fenced in the running table.
func fenced(r *Router, fleet string) bool { return r.Config().Apps["shop"].Fleets[fleet].Fenced }

// adminCall sends one request to the admin API with the headers given.
func adminCall(t *testing.T, c *http.Client, method, url, host, body string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

func TestAdminRefusesForeignHostsAndOtherOrigins(t *testing.T) {
	r, admin, _, _ := adminRouter(t, "")
	port := admin[strings.LastIndexByte(admin, ':')+1:]
	c := &http.Client{}
	for _, tc := range []struct {
		name string
		host string
		hdr  []string
		want string // part of the refusal
	}{
		{"rebound name", "evil.example:" + port, nil, `Host "evil.example:` + port},
		{"rebound name without port", "evil.example", nil, `Host "evil.example"`},
		{"private address", "192.168.1.10:" + port, nil, "not a loopback address"},
		{"page of another port", "", []string{"Origin", "http://127.0.0.1:8000"}, `Origin: "http://127.0.0.1:8000"`},
		{"page of another site", "", []string{"Origin", "https://evil.example"}, "Origin"},
		{"opaque origin", "", []string{"Origin", "null"}, `Origin: "null"`},
		{"cross-site fetch", "", []string{"Sec-Fetch-Site", "cross-site"}, "Sec-Fetch-Site"},
		{"same-site fetch", "", []string{"Sec-Fetch-Site", "same-site"}, "Sec-Fetch-Site"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := adminCall(t, c, "POST", admin+"/drain", tc.host, drainBlue, tc.hdr...)
			var e apiError
			json.Unmarshal([]byte(body), &e)
			if code != http.StatusForbidden || e.Code != "forbidden" || !strings.Contains(e.Message, tc.want) {
				t.Fatalf("got %d %s, want 403 naming %s", code, body, tc.want)
			}
			if code, _ := adminCall(t, c, "GET", admin+"/routes", tc.host, "", tc.hdr...); code != http.StatusForbidden {
				t.Fatalf("GET /routes: %d, want 403", code)
			}
			if fenced(r, "blue") {
				t.Fatal("the refused request fenced the fleet")
			}
		})
	}
	// Command-line clients, and a browser's own navigation or same-origin
	// requests, still work.
	for _, tc := range []struct {
		host string
		hdr  []string
	}{
		{"localhost:" + port, nil},
		{"LOCALHOST", nil},
		{"127.0.0.2:" + port, nil},
		{"[::1]:" + port, nil},
		{"", []string{"Sec-Fetch-Site", "none"}},
		{"", []string{"Sec-Fetch-Site", "same-origin", "Origin", admin}},
	} {
		if code, body := adminCall(t, c, "GET", admin+"/healthz", tc.host, "", tc.hdr...); code != 200 {
			t.Errorf("Host %q %v: %d %s", tc.host, tc.hdr, code, body)
		}
	}
	if code, body := adminCall(t, c, "POST", admin+"/drain", "", drainBlue); code != 200 || !fenced(r, "blue") {
		t.Fatalf("a drain from the command line: %d %s", code, body)
	}
}

func TestAdminOnUnixSocketRefusesOtherOrigins(t *testing.T) {
	r := startRouter(t, twoFleets(newBackend(t, "blue").addr(), newBackend(t, "green").addr(), 100, 0))
	sock := filepath.Join(t.TempDir(), "admin.sock")
	if _, err := r.ListenAdmin("unix:" + sock); err != nil {
		t.Fatal(err)
	}
	uc := &http.Client{Transport: &http.Transport{Dial: func(_, _ string) (net.Conn, error) { return net.Dial("unix", sock) }}}
	// Any Host is fine on a socket only its owner can open; a browser's
	// cross-origin marks are not.
	if code, body := adminCall(t, uc, "POST", "http://router/drain", "", drainBlue, "Origin", "http://127.0.0.1:8000"); code != 403 || fenced(r, "blue") {
		t.Fatalf("cross-origin drain over the socket: %d %s", code, body)
	}
	if code, body := adminCall(t, uc, "GET", "http://router/healthz", "", ""); code != 200 {
		t.Fatalf("GET /healthz over the socket: %d %s", code, body)
	}
}

func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"": true, "localhost": true, "LocalHost:9100": true, "127.0.0.1": true, "127.9.9.9:1": true,
		"[::1]:9100": true, "[::1]": true, "::1": true,
		"localhost.evil.example": false, "evil.example:9100": false, "10.0.0.1:9100": false, "[::2]:1": false,
		"0.0.0.0:9100": false, "127.0.0.1.nip.io": false, "[::ffff:10.0.0.1]": false,
	} {
		if got := loopbackHost(host); got != want {
			t.Errorf("loopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// chromiumPath is the browser the browser tests drive: $CHROMIUM, else
// Debian's chromium, which scripts/setup.sh installs. Its absence fails the
// test rather than skipping it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no browser at %s (%v): run scripts/setup.sh, which installs Debian's chromium, or set $CHROMIUM", p, err)
	}
	return p
}

// headlessChromium starts a headless browser in which the name rebind.test
// resolves to 127.0.0.1 (inside the browser only: nothing is looked up).
func headlessChromium(t *testing.T) context.Context {
	t.Helper()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("host-resolver-rules", "MAP rebind.test 127.0.0.1"),
		chromedp.UserDataDir(t.TempDir()),
	)
	tab, cancelTab := chromedp.NewContext(actx)
	// The first call starts the browser and must not have a deadline.
	if err := chromedp.Do(tab); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("starting chromium: %v", err)
	}
	ctx, cancelTime := context.WithTimeout(tab, 60*time.Second)
	t.Cleanup(func() { cancelTime(); cancelTab(); cancelAlloc() })
	return ctx
}

// attackerPage serves one HTML page at addr.
func attackerPage(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<!doctype html><title>a page of another site</title><p>hello</p>")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// TestBrowserPagesCannotDrainTheFleet drives real headless Chromium against a
// router whose admin API has no token: a page of another origin on this
// machine posts a drain to the admin API, and a page whose name is re-pointed
// at the admin API's own address (DNS rebinding, made here by the browser's
// own resolver rules) posts one as a same-origin request. Neither
// fences the fleet.
func TestBrowserPagesCannotDrainTheFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	r := startRouter(t, twoFleets(newBackend(t, "blue").addr(), newBackend(t, "green").addr(), 100, 0))
	ctx := headlessChromium(t)
	post := func(url string) string {
		t.Helper()
		// A "simple" request: no preflight, the body goes whatever the answer.
		js := fmt.Sprintf(`fetch(%q, {method: 'POST', mode: 'no-cors', headers: {'Content-Type': 'text/plain'}, body: %q})
			.then(r => r.type + ' ' + r.status, e => 'failed: ' + e)`, url, drainBlue)
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("browser: posting a drain to %s: %v", url, err)
		}
		return v
	}

	// A page of another origin (another port on the same address is the same
	// site, and still another origin).
	adminAddr, err := r.ListenAdmin("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pageAddr := freeAddr(t)
	attackerPage(t, pageAddr)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+pageAddr+"/")); err != nil {
		t.Fatalf("browser: opening the page: %v", err)
	}
	if got := post("http://" + adminAddr.String() + "/drain"); got != "opaque 0" {
		t.Fatalf("the cross-origin post did not reach the admin API: %s", got)
	}
	if fenced(r, "blue") {
		t.Fatal("a page of another origin fenced the live fleet")
	}

	// DNS rebinding: a page whose name now resolves to the admin API's address
	// runs in the admin API's own origin, as far as the browser can tell.
	port := adminAddr.(*net.TCPAddr).Port
	if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("http://rebind.test:%d/", port))); err != nil {
		t.Fatalf("browser: opening the rebound name: %v", err)
	}
	if got := post("/drain"); got != "basic 403" {
		t.Fatalf("the same-origin post after rebinding got %s, want basic 403", got)
	}
	if fenced(r, "blue") {
		t.Fatal("a rebound page fenced the live fleet")
	}
}
