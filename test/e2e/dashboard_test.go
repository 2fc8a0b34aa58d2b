package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is the browser the dashboard tests drive: $CHROMIUM, else
// Debian's chromium, which scripts/setup.sh installs. Its absence fails
// the test rather than skipping it.
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

// newBrowser starts headless chromium with a fresh profile and returns a
// tab's context.
func newBrowser(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
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
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1100),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	tab, cancelTab := chromedp.NewContext(actx)
	// The first call starts the browser and must not have a deadline.
	if err := chromedp.Do(tab); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("starting chromium: %v", err)
	}
	ctx, cancelTime := context.WithTimeout(tab, timeout)
	t.Cleanup(func() { cancelTime(); cancelTab(); cancelAlloc() })
	return ctx
}

// run runs browser actions, failing the test with what was being done.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

// get runs one browser action that answers a value.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// waitJS polls a JavaScript condition in the page until it is true.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	get(t, ctx, "waiting until "+what, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(45*time.Second)))
}

func login(t *testing.T, ctx context.Context, base, token string) {
	t.Helper()
	run(t, ctx, "logging in",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("whoami")),
	)
}

// TestDashboard drives the dashboard in a real browser: log in with the
// admin token, watch a deployment reach its approval, promote it with a
// click, watch the shift (taking the screenshot for the README) and the
// success; then a viewer sees no action buttons, and the API refuses its
// session's actions anyway.
func TestDashboard(t *testing.T) {
	e := newDeployEnv(t)
	base := e.api.Base
	e.deployLive("v1", e.specFor(quick))
	startLoad(t, "http://"+e.prod+"/", 50)

	ctx := newBrowser(t, 100*time.Second)
	admin, err := os.ReadFile(filepath.Join(e.data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}

	// A wrong token: the login page says so.
	run(t, ctx, "logging in with a bad token",
		chromedp.Navigate(base+"/ui/apps/shop"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), "bg_not-a-real-token"),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("login-error")),
	)
	msg := get(t, ctx, "reading the login error", chromedp.Text(chromedp.ID("login-error")))
	if !strings.Contains(msg, "not valid") {
		t.Errorf("login error says %q", msg)
	}

	login(t, ctx, base, strings.TrimSpace(string(admin)))
	waitJS(t, ctx, "the apps page shows shop's traffic and health",
		`(() => { const c = document.querySelector('.app-card[data-app="shop"]'); return !!c && c.querySelector('.split') !== null && c.textContent.includes('2/2 healthy'); })()`)
	run(t, ctx, "opening the app page", chromedp.Navigate(base+"/ui/apps/shop"), chromedp.WaitVisible(chromedp.ID("btn-promote")))
	url := get(t, ctx, "reading the URL", chromedp.Location())
	if strings.Contains(url, "bg_") {
		t.Errorf("a token is in the URL: %s", url)
	}

	d := e.deploy("v2", e.specFor(quick+"strategy:\n  approval: manual\n  steps:\n    - { weight: 50, pause: 12s }\n    - { weight: 100 }\n"), nil)
	waitJS(t, ctx, "the page shows the approval waiting",
		`document.getElementById('phase').textContent === 'AwaitingApproval' && !document.getElementById('attention').hidden && document.getElementById('attention').textContent.includes('approval')`)

	run(t, ctx, "clicking Promote and confirming",
		chromedp.Click(chromedp.ID("btn-promote")),
		chromedp.WaitVisible(chromedp.ID("confirm-ok")),
		chromedp.Click(chromedp.ID("confirm-ok")),
	)
	// Roles, not slots: v1 runs in the slot named green (an app's first
	// deployment uses it), yet it is the live fleet, so it is blue here as in
	// the CLI; v2, the candidate, is green.
	waitJS(t, ctx, "the page shows the shift at 50%, v1 as blue and v2 as green",
		`document.getElementById('phase').textContent === 'Shifting' && document.getElementById('split').textContent.includes('green 50%') &&
		 document.getElementById('summary').textContent.includes('r1 on blue') && document.getElementById('split').textContent.includes('green r2')`)
	// Charts: a few samples with green taking traffic beside blue.
	waitJS(t, ctx, "the charts show both fleets",
		`+document.getElementById('charts').dataset.greenPoints >= 3 && +document.getElementById('charts').dataset.bluePoints >= 3`)
	shot := get(t, ctx, "taking a screenshot", chromedp.CaptureScreenshot())
	artifact := filepath.Join(t.TempDir(), "dashboard.png")
	if err := os.WriteFile(artifact, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the app page during the shift: %s", artifact)
	if os.Getenv("BLUEGREEN_UPDATE_SCREENSHOT") == "1" {
		_, file, _, _ := goruntime.Caller(0)
		docs := filepath.Join(filepath.Dir(file), "..", "..", "docs", "dashboard.png")
		if err := os.WriteFile(docs, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", docs)
	}

	// On a phone's width the page stacks: nothing runs off to the side and
	// the actions stay on screen.
	run(t, ctx, "narrowing the window to a phone's width", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	waitJS(t, ctx, "the page to fit a phone's width",
		`document.documentElement.scrollWidth <= window.innerWidth + 1 &&
		 document.getElementById('btn-promote').getBoundingClientRect().right <= window.innerWidth`)
	run(t, ctx, "widening the window again", chromedp.EmulateReset())

	waitJS(t, ctx, "the page shows the deployment succeeded",
		`document.getElementById('phase').textContent === 'Succeeded' && document.getElementById('outcome').textContent.startsWith('succeeded')`)
	if got := e.waitEnd(d.ID, 30*time.Second); got.Outcome != "succeeded" {
		t.Fatalf("deployment %s: %s (%s)", d.ID, got.Outcome, got.Reason)
	}
	events := get(t, ctx, "counting streamed events", chromedp.Evaluate[int](`document.querySelectorAll('#events li').length`))
	if events < 5 {
		t.Errorf("the event log shows %d events", events)
	}
	step := get(t, ctx, "reading the step", chromedp.Evaluate[string](`document.getElementById('step').textContent`))
	if m := regexp.MustCompile(`Step (\d+) of (\d+)`).FindStringSubmatch(step); m != nil && atoi(m[1]) > atoi(m[2]) {
		t.Errorf("the page says %q", step)
	}

	// A green that never becomes healthy: the page says why, as the CLI does.
	bad := e.deploy("v3", e.spec(specParts{env: `{ HELLO_FAIL_HEALTH: "1" }`, startup: "2s", extra: quick}), nil)
	waitJS(t, ctx, "the page shows why green failed",
		`document.getElementById('outcome').textContent.includes('rolled back') &&
		 document.getElementById('outcome').textContent.includes('last health check: GET /healthz answered 503 Service Unavailable: failing on purpose')`)
	if got := e.waitEnd(bad.ID, 30*time.Second); got.Outcome != "rolled_back" {
		t.Fatalf("deployment %s: %s (%s)", bad.ID, got.Outcome, got.Reason)
	}

	// A viewer: no action buttons, and its session cannot act.
	viewer, err := e.api.CreateToken(context.Background(), "watcher", "viewer")
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "logging out", chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("token")))
	login(t, ctx, base, viewer.Secret)
	run(t, ctx, "opening the app page as a viewer",
		chromedp.Navigate(base+"/ui/apps/shop"),
		chromedp.WaitVisible(chromedp.CSS("#history tbody tr")),
	)
	buttons := get(t, ctx, "counting buttons", chromedp.Evaluate[int](`document.querySelectorAll('button[data-action], .actions').length`))
	status := get(t, ctx, "rolling back as a viewer", chromedp.Evaluate[int](
		`fetch('/api/v1/apps/shop/rollback', {method: 'POST', headers: {'X-Bluegreen-CSRF': document.body.dataset.csrf, 'Content-Type': 'application/json'}, body: '{}'}).then(r => r.status)`,
		chromedp.EvalAwaitPromise))
	if buttons != 0 {
		t.Errorf("a viewer sees %d action buttons", buttons)
	}
	if status != 403 {
		t.Errorf("a viewer's rollback through its session answered %d, want 403", status)
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
