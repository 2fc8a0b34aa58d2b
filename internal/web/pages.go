package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"bluegreen/internal/auth"
	"bluegreen/internal/store"
)

func withViewer(ctx context.Context, v viewer) context.Context {
	return context.WithValue(ctx, viewerKey{}, v)
}

func viewerOf(ctx context.Context) (viewer, bool) {
	v, ok := ctx.Value(viewerKey{}).(viewer)
	return v, ok
}

// maxNext bounds the next parameter: the dashboard's own paths are short.
const maxNext = 2048

// safeNext is where to go after logging in: a path on this server, else
// "/". Browsers drop tabs and newlines from a URL and read a backslash as a
// slash, so "/\t/evil.com" or "/\\evil.com" would lead to another site; a
// proxy or a server on the way may decode %2F once more. So the path must be
// plain as written and after each round of percent-decoding: one leading
// slash, no "//", no backslash, no control character, no scheme or host.
func safeNext(next string) string {
	if len(next) > maxNext {
		return "/"
	}
	p := next
	for range 3 {
		if !plainPath(p) {
			return "/"
		}
		d, err := url.PathUnescape(p)
		if err != nil {
			return "/"
		}
		if d == p {
			return next
		}
		p = d
	}
	// Still encoded after three rounds: nothing of ours looks like that.
	return "/"
}

// plainPath reports whether p is a path with a single leading slash and
// nothing a browser could read as another origin.
func plainPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "" && u.Host == "" && u.User == nil && u.Opaque == ""
}

// sameOrigin refuses a form posted from another site's page. Browsers send
// Origin with every POST; a request without one (a script, curl) is let
// through, as it carries no cookie of a person's browser.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	d.render(w, r, http.StatusOK, "login", &pageData{Title: "Log in", Next: safeNext(r.URL.Query().Get("next"))})
}

// login checks the token of the form and starts a session for it. The
// token goes in the body of a POST, never in a URL.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		d.render(w, r, http.StatusBadRequest, "login", &pageData{Title: "Log in", Next: "/", Error: "The form could not be read: " + err.Error()})
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	fail := func(status int, msg string) {
		d.render(w, r, status, "login", &pageData{Title: "Log in", Next: next, Error: msg})
	}
	if !sameOrigin(r) {
		fail(http.StatusForbidden, "This login form was sent from another site; open the dashboard's own login page.")
		return
	}
	secret := strings.TrimSpace(r.PostForm.Get("token"))
	if secret == "" {
		fail(http.StatusBadRequest, "Paste a token to log in. The server writes an admin token to admin.token in its data directory; `bluegreen token create` makes more.")
		return
	}
	remote := auth.RemoteKey(r)
	if ok, wait := d.o.Failures.Allow(remote); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(auth.RetryAfter(wait)))
		fail(http.StatusTooManyRequests, fmt.Sprintf("Too many failed logins from this address; try again in %d seconds.", auth.RetryAfter(wait)))
		return
	}
	tok, err := d.o.Tokens.Authenticate(r.Context(), secret)
	if errors.Is(err, auth.ErrInvalidToken) {
		// The remote address, never what was typed: a token pasted into
		// the wrong field must not end up in a log.
		d.o.Logger.Warn("failed dashboard login: unknown or revoked token", "remote", r.RemoteAddr)
		if d.o.Failures.Fail(remote) {
			_, wait := d.o.Failures.Allow(remote)
			d.o.Logger.Warn("too many failed logins; refusing this address's attempts for a while", "remote", remote, "retry_after", auth.RetryAfter(wait))
		}
		fail(http.StatusUnauthorized, "That token is not valid: it is unknown or has been revoked. Tokens start with bg_; `bluegreen token create` makes one.")
		return
	}
	if err != nil {
		d.o.Logger.Error("checking a token at login", "err", err)
		fail(http.StatusInternalServerError, "The token could not be checked: "+err.Error())
		return
	}
	id, _ := d.o.Sessions.create(tok)
	setCookie(w, r, id, d.o.Secure)
	d.o.Logger.Info("dashboard login", "token", tok.ID, "name", tok.Name, "role", tok.Role)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session. It is a POST with the session's CSRF token, so
// that another site cannot log a person out.
func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	id, sess, _, ok, _ := d.o.Sessions.lookup(r.Context(), r)
	if ok && sess.csrf != "" {
		if err := r.ParseForm(); err != nil || !sameSecret(r.PostForm.Get("csrf"), sess.csrf) {
			http.Error(w, "logging out needs the page's CSRF token; reload the dashboard and try again", http.StatusForbidden)
			return
		}
	}
	if ok {
		d.o.Sessions.end(id)
	}
	clearCookie(w, r, d.o.Secure)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (d *Dashboard) appsPage(w http.ResponseWriter, r *http.Request) {
	apps, err := d.o.Store.ListApps(r.Context())
	if err != nil {
		http.Error(w, "listing the apps: "+err.Error(), http.StatusInternalServerError)
		return
	}
	d.render(w, r, http.StatusOK, "apps", &pageData{Title: "Apps", Apps: apps})
}

func (d *Dashboard) appPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("app")
	if !store.ValidAppName(name) {
		d.render(w, r, http.StatusNotFound, "notfound", &pageData{Title: "Not found"})
		return
	}
	if _, err := d.o.Store.GetApp(r.Context(), name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			d.render(w, r, http.StatusNotFound, "notfound", &pageData{Title: "Not found", App: name})
			return
		}
		http.Error(w, "reading app "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	d.render(w, r, http.StatusOK, "app", &pageData{Title: name, App: name})
}
