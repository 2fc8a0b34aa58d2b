package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"bluegreen/internal/auth"
)

// offSite are next values that would take a browser to another site, as
// the login form receives them (the query decoded once).
var offSite = []string{
	"/\t/evil.com", // ?next=/%09/evil.com
	"/%09/evil.com",
	"/\n/evil.com",
	"/\r/evil.com",
	"/%0a/evil.com",
	"/%0D%0A/evil.com",
	"//evil.com",
	"///evil.com",
	"/\\evil.com",
	"\\\\evil.com",
	"/\\/evil.com",
	"/%5Cevil.com",
	"/%5c%5cevil.com",
	"/\t/\t/evil.com",
	"https://evil.com",
	"http:/evil.com",
	"//user@evil.com/",
	"javascript:alert(1)",
	"JavaScript:alert(1)",
	"/%2F%2Fevil.com",
	"/%2f/evil.com",
	"/%252F%252Fevil.com",
	"/%25252F%25252Fevil.com",
	"/%2525252F%2525252Fevil.com",
	"/%zz",
	"/ui/apps/shop\x00",
	"/ui\x7f/apps",
	"evil.com",
	"",
	" /ui/apps/shop",
	"/" + strings.Repeat("a", maxNext),
}

// onSite are the dashboard's own paths, kept as they are.
var onSite = []string{
	"/",
	"/ui/apps/shop",
	"/ui/apps/shop?window=1m",
	"/ui/apps/my-app-2",
	"/ui/assets/dashboard.css",
	"/ui/apps/shop#events",
	"/ui/apps/%73hop",
}

func TestSafeNextKeepsPeopleOnTheDashboard(t *testing.T) {
	for _, next := range offSite {
		if got := safeNext(next); got != "/" {
			t.Errorf("safeNext(%q) = %q, want /", next, got)
		}
	}
	for _, next := range onSite {
		if got := safeNext(next); got != next {
			t.Errorf("safeNext(%q) = %q, want it kept", next, got)
		}
	}
}

// The login form's redirect, end to end: the query parameter as a browser
// sends it, the Location as a browser would follow it.
func TestLoginRedirectStaysOnSite(t *testing.T) {
	e := newEnv(t, false)
	_, secret := e.token(t, "alice", auth.Viewer)
	for _, raw := range []string{"/%09/evil.com", "%2F%2Fevil.com", "/%5Cevil.com", "/%252F%252Fevil.com", "https:%2F%2Fevil.com"} {
		page := e.do(t, "GET", "/login?next="+raw, "", nil, "")
		if !strings.Contains(page.body, `name="next" value="/"`) {
			t.Errorf("login page for next=%s keeps an off-site next:\n%s", raw, page.body)
		}
		next, _ := url.QueryUnescape(raw)
		r := e.do(t, "POST", "/login", url.Values{"token": {secret}, "next": {next}}.Encode(), nil, "")
		if loc := r.header.Get("Location"); r.status != http.StatusSeeOther || loc != "/" {
			t.Errorf("login with next=%s: %d, Location %q; want /", raw, r.status, loc)
		}
	}
}

// browserHost is where a browser on http://dash.test/login goes when told
// Location: loc. It follows the URL standard's quirks that matter here:
// tabs and newlines vanish, a backslash is a slash, leading and trailing
// spaces and control characters are trimmed.
func browserHost(loc string) (string, bool) {
	loc = strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r':
			return -1
		case '\\':
			return '/'
		}
		return r
	}, loc)
	loc = strings.TrimFunc(loc, func(r rune) bool { return r <= ' ' })
	base, _ := url.Parse("http://dash.test/login")
	u, err := base.Parse(loc)
	if err != nil {
		return "", false
	}
	return u.Scheme + "://" + u.Host, true
}

// FuzzSafeNext: whatever comes in, what safeNext lets out leads a browser
// to this site, also once decoded again by something on the way.
func FuzzSafeNext(f *testing.F) {
	for _, s := range append(offSite, onSite...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		if got != "/" && got != next {
			t.Fatalf("safeNext(%q) = %q: neither the input nor /", next, got)
		}
		for s, round := got, 0; round < 4; round++ {
			if h, ok := browserHost(s); ok && h != "http://dash.test" {
				t.Fatalf("safeNext(%q) = %q, which leads to %s (decoded %d times: %q)", next, got, h, round, s)
			}
			d, err := url.PathUnescape(s)
			if err != nil || d == s {
				break
			}
			s = d
		}
		for i := 0; i < len(got); i++ {
			if c := got[i]; c < 0x20 || c == 0x7f || c == '\\' {
				t.Fatalf("safeNext(%q) = %q keeps byte %#x", next, got, c)
			}
		}
	})
}

// Failed logins are logged with the address, never the token, and limited
// per address; the API's bearer failures count against the same address.
func TestFailedLoginsAreLoggedAndLimited(t *testing.T) {
	e := newEnv(t, false)
	_, secret := e.token(t, "alice", auth.Viewer)
	wrong := "bg_wrongwrongwrongwrongwrongwrongwrongwrong00"
	for i := range auth.DefaultFailureBurst {
		r := e.do(t, "POST", "/login", "token="+wrong, nil, "")
		if r.status != http.StatusUnauthorized {
			t.Fatalf("failed login %d: %d", i+1, r.status)
		}
	}
	log := e.log.String()
	if n := strings.Count(log, "failed dashboard login"); n != auth.DefaultFailureBurst {
		t.Errorf("%d failed logins logged, want %d:\n%s", n, auth.DefaultFailureBurst, log)
	}
	if !strings.Contains(log, "remote=127.0.0.1:") || !strings.Contains(log, "too many failed logins") {
		t.Errorf("the log does not name the address or the limit:\n%s", log)
	}
	if strings.Contains(log, wrong) {
		t.Errorf("the log holds the attempted token:\n%s", log)
	}

	// Refused now, even with the right token, until the bucket refills.
	for what, token := range map[string]string{"wrong": wrong, "right": secret} {
		r := e.do(t, "POST", "/login", "token="+token, nil, "")
		secs, _ := strconv.Atoi(r.header.Get("Retry-After"))
		if r.status != http.StatusTooManyRequests || secs < 1 || !strings.Contains(r.body, "Too many failed logins") {
			t.Errorf("%s token while limited: %d, Retry-After %q\n%s", what, r.status, r.header.Get("Retry-After"), r.body)
		}
		if r.header.Get("Set-Cookie") != "" {
			t.Errorf("%s token while limited set a cookie", what)
		}
	}
	a := e.do(t, "GET", "/api/v1/apps", "", map[string]string{"Authorization": "Bearer " + secret}, "")
	if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" || !strings.Contains(a.body, "too_many_requests") {
		t.Errorf("the API while the address is limited: %d %v %s", a.status, a.header, a.body)
	}
	if n := strings.Count(e.log.String(), "too many failed"); n != 1 {
		t.Errorf("the limit was logged %d times; want once while it lasts:\n%s", n, e.log.String())
	}

	e.advance(auth.DefaultFailureEvery)
	e.login(t, secret)

	// On the API: a bad bearer token is logged and charged the same way.
	e.advance(auth.DefaultFailureEvery * auth.DefaultFailureBurst)
	for i := range auth.DefaultFailureBurst {
		a := e.do(t, "GET", "/api/v1/apps", "", map[string]string{"Authorization": "Bearer " + wrong}, "")
		if a.status != http.StatusUnauthorized {
			t.Fatalf("bad bearer %d: %d", i+1, a.status)
		}
	}
	if a := e.do(t, "GET", "/api/v1/apps", "", map[string]string{"Authorization": "Bearer " + wrong}, ""); a.status != http.StatusTooManyRequests {
		t.Errorf("bad bearer past the burst: %d", a.status)
	}
	log = e.log.String()
	if n := strings.Count(log, "API call with a credential that is not valid"); n != auth.DefaultFailureBurst || strings.Contains(log, wrong) {
		t.Errorf("%d bad bearer calls logged (want %d), or the token logged:\n%s", n, auth.DefaultFailureBurst, log)
	}
	// Calls without any credential are not guesses: a 401, not a 429.
	if a := e.do(t, "GET", "/api/v1/apps", "", nil, ""); a.status != http.StatusUnauthorized {
		t.Errorf("no credential while limited: %d", a.status)
	}
}

// One token has at most MaxSessionsPerToken sessions: a login past it ends
// the one unused for the longest, and other tokens' sessions stay.
func TestSessionsPerTokenAreBounded(t *testing.T) {
	e := newEnv(t, false)
	_, secret := e.token(t, "alice", auth.Viewer)
	_, other := e.token(t, "bob", auth.Viewer)
	bob := e.login(t, other)
	var cookies []string
	for range MaxSessionsPerToken {
		cookies = append(cookies, e.login(t, secret))
		e.advance(1)
	}
	// The first session is used again, so the second is the least used.
	if r := e.do(t, "GET", "/", "", nil, cookies[0]); r.status != 200 {
		t.Fatalf("first session: %d", r.status)
	}
	e.advance(1)
	newest := e.login(t, secret)
	for i, c := range cookies {
		r := e.do(t, "GET", "/", "", nil, c)
		if want := map[bool]int{true: http.StatusSeeOther, false: 200}[i == 1]; r.status != want {
			t.Errorf("session %d after one login too many: %d, want %d", i+1, r.status, want)
		}
	}
	for who, c := range map[string]string{"newest": newest, "another token's": bob} {
		if r := e.do(t, "GET", "/", "", nil, c); r.status != 200 {
			t.Errorf("%s session: %d", who, r.status)
		}
	}
	e.sessions.mu.Lock()
	n := len(e.sessions.byID)
	e.sessions.mu.Unlock()
	if n != MaxSessionsPerToken+1 {
		t.Errorf("%d sessions kept, want %d", n, MaxSessionsPerToken+1)
	}
}
