package web

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/auth"
	"bluegreen/internal/store"
)

// env is the dashboard and the API over a real store, on one loopback
// server, as internal/server mounts them; its clock can be moved.
type env struct {
	url      string
	st       *store.Store
	tokens   *auth.Tokens
	sessions *Sessions
	log      *logBuffer // what the dashboard and the API logged
	mu       sync.Mutex
	now      time.Time
}

// logBuffer is a log shared by the server's goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (e *env) clock() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now }
func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
}

func newEnv(t *testing.T, secure bool) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Update(ctx, func(tx *store.Tx) error { _, err := tx.CreateApp(ctx, "shop"); return err }); err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, tokens: auth.New(st, nil), now: time.Now(), log: &logBuffer{}}
	sessions := NewSessions(st, e.clock, time.Hour, 0)
	e.sessions = sessions
	log := slog.New(slog.NewTextHandler(e.log, nil))
	failures := auth.NewLimiter(0, 0, e.clock)
	d, err := New(Options{Store: st, Tokens: e.tokens, Sessions: sessions, Logger: log, Secure: secure, Failures: failures})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", (&api.Server{Store: st, Tokens: e.tokens, Sessions: sessions, Logger: log, Failures: failures}).Handler())
	mux.Handle("/", d.Handler())
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	e.url = hs.URL
	return e
}

func (e *env) token(t *testing.T, name string, role auth.Role) (store.Token, string) {
	t.Helper()
	tok, secret, err := e.tokens.Create(context.Background(), name, role)
	if err != nil {
		t.Fatal(err)
	}
	return tok, secret
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

type resp struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(t *testing.T, method, path, body string, header map[string]string, cookie string) resp {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if method == "POST" && !strings.HasPrefix(path, "/api/") {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: CookieName, Value: cookie})
	}
	r, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{r.StatusCode, r.Header, string(b)}
}

// login posts the token to the login form and returns the session cookie.
func (e *env) login(t *testing.T, secret string) string {
	t.Helper()
	r := e.do(t, "POST", "/login", url.Values{"token": {secret}, "next": {"/ui/apps/shop"}}.Encode(), nil, "")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/apps/shop" {
		t.Fatalf("login: %d, Location %q\n%s", r.status, r.header.Get("Location"), r.body)
	}
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == CookieName {
			return c.Value
		}
	}
	t.Fatal("login set no session cookie")
	return ""
}

var csrfRE = regexp.MustCompile(`data-csrf="([^"]+)"`)

// csrf reads the session's CSRF token from a page, as the script does.
func (e *env) csrf(t *testing.T, cookie string) string {
	t.Helper()
	r := e.do(t, "GET", "/ui/apps/shop", "", nil, cookie)
	m := csrfRE.FindStringSubmatch(r.body)
	if r.status != 200 || m == nil {
		t.Fatalf("app page: %d, no CSRF token\n%s", r.status, r.body)
	}
	return m[1]
}

func TestEveryRouteHasARole(t *testing.T) {
	want := map[string]auth.Role{
		"GET /login": public, "POST /login": public, "POST /logout": public,
		"GET /{$}": auth.Viewer, "GET /ui/apps/{app}": auth.Viewer,
		"GET /ui/assets/": public, "/": public,
	}
	d := &Dashboard{}
	var got []string
	for _, rt := range d.routes() {
		got = append(got, rt.pattern)
		role, ok := want[rt.pattern]
		if !ok {
			t.Errorf("route %q is not in this test's table: decide who may see it and add it here and to docs/dashboard.md", rt.pattern)
		} else if role != rt.role {
			t.Errorf("route %q has role %q, want %q", rt.pattern, rt.role, role)
		}
	}
	for p := range want {
		if !slices.Contains(got, p) {
			t.Errorf("the table has %q, which the dashboard does not serve", p)
		}
	}
}

func TestPagesNeedASession(t *testing.T) {
	e := newEnv(t, false)
	for _, path := range []string{"/", "/ui/apps/shop", "/ui/apps/nope"} {
		for what, cookie := range map[string]string{"no cookie": "", "unknown session": "made-up"} {
			r := e.do(t, "GET", path, "", nil, cookie)
			loc := r.header.Get("Location")
			if r.status != http.StatusSeeOther || loc != "/login?next="+url.QueryEscape(path) {
				t.Errorf("%s, %s: %d, Location %q; want 303 to the login page", path, what, r.status, loc)
			}
		}
	}
	// The API answers a missing or stale session with its own 401.
	r := e.do(t, "GET", "/api/v1/apps", "", nil, "made-up")
	if r.status != 401 || !strings.Contains(r.body, "log in again") {
		t.Errorf("API with an unknown session: %d %s", r.status, r.body)
	}
}

func TestLogin(t *testing.T) {
	e := newEnv(t, false)
	_, secret := e.token(t, "alice", auth.Deployer)

	r := e.do(t, "GET", "/login?next=/ui/apps/shop", "", nil, "")
	if r.status != 200 || !strings.Contains(r.body, `name="token"`) || !strings.Contains(r.body, `type="password"`) || !strings.Contains(r.body, `value="/ui/apps/shop"`) {
		t.Errorf("login page: %d\n%s", r.status, r.body)
	}
	if r.header.Get("Content-Security-Policy") == "" || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("login page lacks security headers: %v", r.header)
	}

	for _, c := range []struct {
		what, form string
		header     map[string]string
		status     int
		msg        string
	}{
		{"bad token", "token=bg_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", nil, 401, "That token is not valid"},
		{"not a token", "token=hello", nil, 401, "That token is not valid"},
		{"empty", "token=", nil, 400, "Paste a token"},
		{"another site's form", "token=" + secret, map[string]string{"Origin": "https://evil.example"}, 403, "from another site"},
	} {
		r := e.do(t, "POST", "/login", c.form, c.header, "")
		if r.status != c.status || !strings.Contains(r.body, c.msg) || !strings.Contains(r.body, `id="login-error"`) {
			t.Errorf("%s: %d; want %d with %q\n%s", c.what, r.status, c.status, c.msg, r.body)
		}
		if r.header.Get("Set-Cookie") != "" {
			t.Errorf("%s: a cookie was set: %s", c.what, r.header.Get("Set-Cookie"))
		}
	}

	r = e.do(t, "POST", "/login", url.Values{"token": {secret}, "next": {"//evil.example/x"}}.Encode(), map[string]string{"Origin": e.url}, "")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/" {
		t.Errorf("login with an off-site next: %d, Location %q; want 303 to /", r.status, r.header.Get("Location"))
	}
	sc := r.header.Get("Set-Cookie")
	for _, want := range []string{CookieName + "=", "Path=/", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(sc, want) {
			t.Errorf("session cookie %q lacks %s", sc, want)
		}
	}
	if strings.Contains(sc, "Secure") || strings.Contains(sc, "Max-Age") || strings.Contains(sc, "Expires") {
		t.Errorf("session cookie %q: want a browser-session cookie, not Secure on plain HTTP", sc)
	}
	if strings.Contains(sc, secret) || strings.Contains(r.header.Get("Location"), secret) {
		t.Error("the token appears in the cookie or the redirect")
	}

	// Behind a TLS-terminating proxy the cookie is marked Secure.
	es := newEnv(t, true)
	_, s2 := es.token(t, "bob", auth.Viewer)
	r = es.do(t, "POST", "/login", "token="+s2, nil, "")
	if !strings.Contains(r.header.Get("Set-Cookie"), "Secure") {
		t.Errorf("with Secure: cookie %q", r.header.Get("Set-Cookie"))
	}
}

func TestPagesByRole(t *testing.T) {
	e := newEnv(t, false)
	_, viewerSecret := e.token(t, "watcher", auth.Viewer)
	_, deployerSecret := e.token(t, "ci", auth.Deployer)
	viewer, deployer := e.login(t, viewerSecret), e.login(t, deployerSecret)

	for who, cookie := range map[string]string{"viewer": viewer, "deployer": deployer} {
		r := e.do(t, "GET", "/", "", nil, cookie)
		if r.status != 200 || !strings.Contains(r.body, `data-app="shop"`) || !strings.Contains(r.body, `href="/ui/apps/shop"`) {
			t.Errorf("%s, apps page: %d\n%s", who, r.status, r.body)
		}
		if r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s, apps page: Cache-Control %q", who, r.header.Get("Cache-Control"))
		}
		r = e.do(t, "GET", "/ui/apps/nope", "", nil, cookie)
		if r.status != 404 || !strings.Contains(r.body, "There is no app named") {
			t.Errorf("%s, unknown app: %d\n%s", who, r.status, r.body)
		}
		r = e.do(t, "GET", "/no/such/page", "", nil, cookie)
		if r.status != 404 {
			t.Errorf("%s, unknown page: %d", who, r.status)
		}
	}

	r := e.do(t, "GET", "/ui/apps/shop", "", nil, deployer)
	for _, want := range []string{`id="btn-promote"`, `id="btn-promote-full"`, `id="btn-abort"`, `id="btn-rollback"`, `<dialog id="confirm"`, `data-can-deploy="true"`, "ci (deployer)"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("deployer's app page lacks %s", want)
		}
	}
	r = e.do(t, "GET", "/ui/apps/shop", "", nil, viewer)
	if r.status != 200 || !strings.Contains(r.body, "watcher (viewer)") {
		t.Errorf("viewer's app page: %d\n%s", r.status, r.body)
	}
	for _, unwanted := range []string{"data-action", "btn-promote", "<dialog", `data-can-deploy="true"`} {
		if strings.Contains(r.body, unwanted) {
			t.Errorf("viewer's app page has %s", unwanted)
		}
	}

	for path, ctype := range map[string]string{"/ui/assets/dashboard.js": "text/javascript", "/ui/assets/dashboard.css": "text/css"} {
		r := e.do(t, "GET", path, "", nil, "")
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), ctype) || len(r.body) < 1000 {
			t.Errorf("%s: %d %s, %d bytes", path, r.status, r.header.Get("Content-Type"), len(r.body))
		}
	}
}

func TestSessionsOnTheAPI(t *testing.T) {
	e := newEnv(t, false)
	_, viewerSecret := e.token(t, "watcher", auth.Viewer)
	adminTok, adminSecret := e.token(t, "root", auth.Admin)
	viewer, admin := e.login(t, viewerSecret), e.login(t, adminSecret)
	viewerCSRF, adminCSRF := e.csrf(t, viewer), e.csrf(t, admin)

	if r := e.do(t, "GET", "/api/v1/apps", "", nil, viewer); r.status != 200 || !strings.Contains(r.body, `"shop"`) {
		t.Errorf("viewer session reading apps: %d %s", r.status, r.body)
	}
	// A viewer's session may not act, CSRF token or not.
	r := e.do(t, "POST", "/api/v1/apps/shop/promote", "{}", map[string]string{CSRFHeader: viewerCSRF}, viewer)
	if r.status != 403 || !strings.Contains(r.body, "role deployer") {
		t.Errorf("viewer session promoting: %d %s", r.status, r.body)
	}

	body := `{"name": "made-in-browser", "role": "viewer"}`
	for what, h := range map[string]map[string]string{
		"no CSRF header":        nil,
		"wrong CSRF header":     {CSRFHeader: "nope"},
		"another session's one": {CSRFHeader: viewerCSRF},
	} {
		r := e.do(t, "POST", "/api/v1/tokens", body, h, admin)
		if r.status != 403 || !strings.Contains(r.body, "X-Bluegreen-CSRF") {
			t.Errorf("admin session, %s: %d %s; want 403", what, r.status, r.body)
		}
	}
	if r := e.do(t, "POST", "/api/v1/tokens", body, map[string]string{CSRFHeader: adminCSRF}, admin); r.status != 201 {
		t.Errorf("admin session with its CSRF token: %d %s", r.status, r.body)
	}
	// A bearer token is judged on its own, whatever cookie comes along.
	if r := e.do(t, "GET", "/api/v1/tokens", "", map[string]string{"Authorization": "Bearer " + viewerSecret}, admin); r.status != 403 {
		t.Errorf("viewer bearer with an admin cookie: %d", r.status)
	}

	// Revoking the token ends its sessions at once.
	if _, err := e.tokens.Revoke(context.Background(), adminTok.ID); err == nil {
		t.Fatal("revoked the last admin token")
	}
	e.token(t, "root2", auth.Admin)
	if _, err := e.tokens.Revoke(context.Background(), adminTok.ID); err != nil {
		t.Fatal(err)
	}
	if r := e.do(t, "GET", "/api/v1/apps", "", nil, admin); r.status != 401 {
		t.Errorf("session of a revoked token, API: %d %s", r.status, r.body)
	}
	if r := e.do(t, "GET", "/", "", nil, admin); r.status != http.StatusSeeOther {
		t.Errorf("session of a revoked token, page: %d", r.status)
	}
}

func TestLogoutAndExpiry(t *testing.T) {
	e := newEnv(t, false)
	_, secret := e.token(t, "watcher", auth.Viewer)
	cookie := e.login(t, secret)
	csrf := e.csrf(t, cookie)

	if r := e.do(t, "POST", "/logout", "", nil, cookie); r.status != 403 {
		t.Errorf("logout without the CSRF token: %d", r.status)
	}
	r := e.do(t, "POST", "/logout", "csrf="+csrf, nil, cookie)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/login" || !strings.Contains(r.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("logout: %d, Location %q, Set-Cookie %q", r.status, r.header.Get("Location"), r.header.Get("Set-Cookie"))
	}
	if r := e.do(t, "GET", "/", "", nil, cookie); r.status != http.StatusSeeOther {
		t.Errorf("after logout: %d", r.status)
	}

	// A session unused for longer than the idle time ends; use keeps it.
	cookie = e.login(t, secret)
	e.advance(50 * time.Minute)
	if r := e.do(t, "GET", "/", "", nil, cookie); r.status != 200 {
		t.Errorf("after 50 minutes: %d", r.status)
	}
	e.advance(50 * time.Minute)
	if r := e.do(t, "GET", "/", "", nil, cookie); r.status != 200 {
		t.Errorf("50 minutes after the last use: %d", r.status)
	}
	e.advance(61 * time.Minute)
	if r := e.do(t, "GET", "/", "", nil, cookie); r.status != http.StatusSeeOther {
		t.Errorf("61 minutes idle: %d; want the login page", r.status)
	}
}
