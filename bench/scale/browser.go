package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

// browser loads the dashboard's apps page: in headless Chromium (the real
// page: its HTML, its script and the API call that fills every card), or,
// with -browser=false, over plain HTTP (the HTML, then the same API call).
type browser struct {
	base   string
	token  string
	ctx    context.Context // the tab, when in Chromium
	cancel func()
	dir    string
	http   *http.Client
}

func (e *benchEnv) newBrowser(ctx context.Context) (*browser, error) {
	b := &browser{base: "http://" + e.apiAddr, token: e.token}
	jar, _ := cookiejar.New(nil)
	b.http = &http.Client{Jar: jar, Timeout: time.Minute}
	if !e.o.Browser {
		return b, b.loginHTTP(ctx)
	}
	path := os.Getenv("CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no browser at %s (%v): install Debian's chromium (scripts/setup.sh does), set $CHROMIUM, or pass -browser=false", path, err)
	}
	dir, err := os.MkdirTemp("", "bluegreen-scalebench-chromium-")
	if err != nil {
		return nil, err
	}
	b.dir = dir
	actx, cancelAlloc := chromedp.NewExecAllocator(context.WithoutCancel(ctx),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1280, 1100),
	)
	tab, cancelTab := chromedp.NewContext(actx)
	b.ctx, b.cancel = tab, func() { cancelTab(); cancelAlloc() }
	if err := chromedp.Do(tab); err != nil { // starts the browser, without a deadline
		b.close()
		return nil, fmt.Errorf("starting chromium: %w", err)
	}
	lctx, cancel := context.WithTimeout(tab, time.Minute)
	defer cancel()
	if err := chromedp.Do(lctx,
		chromedp.Navigate(b.base+"/login"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), b.token),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("whoami")),
		// Off the apps page, which would refresh itself meanwhile.
		chromedp.Navigate("about:blank"),
	); err != nil {
		b.close()
		return nil, fmt.Errorf("logging in to the dashboard: %w", err)
	}
	return b, nil
}

func (b *browser) kind() string {
	if b.ctx != nil {
		return "headless Chromium"
	}
	return "HTTP only, no browser"
}

func (b *browser) close() {
	if b.cancel != nil {
		b.cancel()
	}
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// filled is true once every app card shows its status (or an error).
const filled = `(() => { const c = document.querySelectorAll('.app-card .card-body'); return c.length > 0 && Array.from(c).every((e) => e.childElementCount > 0); })()`

// appsPage loads the apps page afresh and returns how long it took until
// every one of the n cards was filled.
func (b *browser) appsPage(ctx context.Context, n int) (time.Duration, error) {
	if b.ctx == nil {
		return b.appsPageHTTP(ctx, n)
	}
	pctx, cancel := context.WithTimeout(b.ctx, 5*time.Minute)
	defer cancel()
	if err := chromedp.Do(pctx, chromedp.Navigate("about:blank")); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := chromedp.Do(pctx, chromedp.Navigate(b.base+"/")); err != nil {
		return 0, fmt.Errorf("loading the dashboard's apps page: %w", err)
	}
	// Asked from here every 10 ms rather than polled in the page: a page of
	// a thousand cards may still be settling into its context when the
	// first question comes, which is then asked again.
	for {
		done, err := chromedp.Run(pctx, chromedp.Evaluate[bool](filled))
		if err == nil && done {
			break
		}
		if pctx.Err() != nil {
			return 0, fmt.Errorf("loading the dashboard's apps page: not every card was filled within 5 minutes (last: %v)", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	cards, err := chromedp.Run(pctx, chromedp.Evaluate[int](`document.querySelectorAll('.app-card').length`))
	if err != nil {
		return 0, err
	}
	// Left open, the page would refresh every card every few seconds and
	// on every event: the idle figures are the server's alone.
	if err := chromedp.Do(pctx, chromedp.Navigate("about:blank")); err != nil {
		return 0, err
	}
	if cards != n {
		return 0, fmt.Errorf("the apps page shows %d cards, want %d", cards, n)
	}
	return took, nil
}

// loginHTTP starts a dashboard session with the token, as the login form does.
func (b *browser) loginHTTP(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.base+"/login", strings.NewReader(url.Values{"token": {b.token}, "next": {"/"}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.base)
	resp, err := b.http.Do(req)
	if err != nil {
		return fmt.Errorf("logging in to the dashboard: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("logging in to the dashboard: %s", resp.Status)
	}
	return nil
}

var cardRE = regexp.MustCompile(`data-app="([^"]+)"`)

// appsPageHTTP fetches the page and then what its script fetches to fill
// the cards: every app's status, in one request.
func (b *browser) appsPageHTTP(ctx context.Context, n int) (time.Duration, error) {
	start := time.Now()
	page, err := b.get(ctx, "/")
	if err != nil {
		return 0, err
	}
	if cards := len(cardRE.FindAllStringSubmatch(page, -1)); cards != n {
		return 0, fmt.Errorf("the apps page shows %d cards, want %d", cards, n)
	}
	if _, err := b.get(ctx, "/api/v1/status"); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func (b *browser) get(ctx context.Context, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.base+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return string(body), err
}
