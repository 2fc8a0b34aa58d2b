// Package web is the dashboard: a few server-rendered pages and a small
// amount of plain JavaScript, embedded in the binary, served beside the
// API. People log in with a token; the pages then call the API with the
// session that login made (see Sessions), with the token's role.
package web

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"

	"bluegreen/internal/auth"
	"bluegreen/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// public marks a page that needs no session.
const public auth.Role = ""

// Options configure the dashboard.
type Options struct {
	Store    *store.Store
	Tokens   *auth.Tokens
	Sessions *Sessions
	Logger   *slog.Logger
	// Secure marks the session cookie Secure even on plain HTTP, for a
	// dashboard behind a TLS-terminating proxy.
	Secure bool
	// Failures limits failed logins per remote address; share it with the
	// API's, so that both count the same guesses (a limiter of its own
	// when nil).
	Failures *auth.Limiter
}

// Dashboard serves the pages.
type Dashboard struct {
	o     Options
	pages map[string]*template.Template
}

// New parses the embedded templates.
func New(o Options) (*Dashboard, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Failures == nil {
		o.Failures = auth.NewLimiter(0, 0, nil)
	}
	d := &Dashboard{o: o, pages: map[string]*template.Template{}}
	for _, name := range []string{"login", "apps", "app", "notfound"} {
		t, err := template.New("layout.html").ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parsing the dashboard's %s page: %w", name, err)
		}
		d.pages[name] = t
	}
	return d, nil
}

// route is one dashboard route and the weakest role that may see it.
type route struct {
	pattern string
	role    auth.Role
	handler http.HandlerFunc
}

// routes lists every route with its role, as the API's table does.
func (d *Dashboard) routes() []route {
	assets, _ := fs.Sub(assetFS, "assets")
	files := http.StripPrefix("/ui/assets/", http.FileServerFS(assets))
	return []route{
		{"GET /login", public, d.loginPage},
		{"POST /login", public, d.login},
		{"POST /logout", public, d.logout}, // checks its session and CSRF token itself
		{"GET /{$}", auth.Viewer, d.appsPage},
		{"GET /ui/apps/{app}", auth.Viewer, d.appPage},
		{"GET /ui/assets/", public, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-cache")
			files.ServeHTTP(w, r)
		}},
		{"/", public, func(w http.ResponseWriter, r *http.Request) {
			d.render(w, r, http.StatusNotFound, "notfound", &pageData{Title: "Not found"})
		}},
	}
}

// Handler returns the dashboard's routes. Mount it beside the API: it
// answers every path the API does not.
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range d.routes() {
		mux.HandleFunc(rt.pattern, d.guard(rt.role, rt.handler))
	}
	return securityHeaders(mux)
}

// securityHeaders forbids what the dashboard never does: scripts, styles or
// connections to other origins, inline scripts, being framed.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", "DENY")
		h.ServeHTTP(w, r)
	})
}

type viewerKey struct{}

// viewer is who is looking at a page.
type viewer struct {
	tok  store.Token
	csrf string
}

// guard sends a request without a valid session to the login page, which
// brings the person back here afterwards.
func (d *Dashboard) guard(need auth.Role, h http.HandlerFunc) http.HandlerFunc {
	if need == public {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		_, sess, tok, ok, err := d.o.Sessions.lookup(r.Context(), r)
		if ok && err != nil && !errors.Is(err, auth.ErrInvalidToken) {
			http.Error(w, "checking the session: "+err.Error(), http.StatusInternalServerError)
			return
		}
		if !ok || err != nil {
			if ok {
				clearCookie(w, r, d.o.Secure)
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if !auth.Role(tok.Role).Allows(need) {
			http.Error(w, fmt.Sprintf("this page needs role %s; token %s has role %s", need, tok.Name, tok.Role), http.StatusForbidden)
			return
		}
		h(w, r.WithContext(withViewer(r.Context(), viewer{tok: tok, csrf: sess.csrf})))
	}
}

// pageData is what every template gets.
type pageData struct {
	Title     string
	User      string // the token's name
	Role      string
	CSRF      string
	CanDeploy bool   // the role may promote, abort, roll back
	Page      string // the page's name, for its script
	App       string
	Apps      []store.App
	Error     string
	Next      string
}

// render executes a page into a buffer first, so that a template error
// never leaves half a page.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, name string, p *pageData) {
	if v, ok := viewerOf(r.Context()); ok {
		p.User, p.Role, p.CSRF = v.tok.Name, v.tok.Role, v.csrf
		p.CanDeploy = auth.Role(v.tok.Role).Allows(auth.Deployer)
	}
	p.Page = name
	var buf bytes.Buffer
	if err := d.pages[name].Execute(&buf, p); err != nil {
		d.o.Logger.Error("rendering a dashboard page", "page", name, "err", err)
		http.Error(w, "rendering the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
