package router

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// echoBackend answers with its name and the request target it received.
func echoPathBackend(t *testing.T, name string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Fleet", name)
		io.WriteString(w, name+" "+r.RequestURI)
	}))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func pathApp(target, path string, strip bool) *AppConfig {
	return &AppConfig{Path: path, StripPrefix: strip, TestFleet: "green",
		Fleets: map[string]*FleetConfig{"green": {Weight: 100, Targets: []string{target}}}}
}

func TestPathPrefixRouting(t *testing.T) {
	cfg := &Config{Apps: map[string]*AppConfig{
		"shop.web":   pathApp(echoPathBackend(t, "web"), "", false),
		"shop.api":   pathApp(echoPathBackend(t, "api"), "/api", true),
		"shop.admin": pathApp(echoPathBackend(t, "admin"), "/api/admin", false),
		"other":      pathApp(echoPathBackend(t, "other"), "/", false),
	}}
	cfg.Apps["other"].Hosts = []string{"other.example"}
	r := startRouter(t, cfg)
	c := &http.Client{}
	for _, tc := range []struct{ host, target, want string }{
		{"", "/", "web /"},
		{"", "/cart?id=3", "web /cart?id=3"},
		{"", "/api", "api /"},
		{"", "/api/", "api /"},
		{"", "/api/items?x=1", "api /items?x=1"},
		{"", "/api?x=1", "api /?x=1"},
		{"", "/apix", "web /apix"},
		{"", "/api/admin/users", "admin /api/admin/users"},
		{"", "/api/administrators", "api /administrators"},
		// The longest prefix among the apps whose hosts match wins: the
		// exact host's root loses to the prefix of an app on every host.
		{"other.example", "/", "other /"},
		{"other.example", "/api/items", "api /items"},
	} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			// A GET is served by the event loops, a POST with a body by
			// the goroutine server: both route alike.
			var body io.Reader
			if method == http.MethodPost {
				body = strings.NewReader("x")
			}
			req, _ := http.NewRequest(method, prodURL(r)+tc.target, body)
			if tc.host != "" {
				req.Host = tc.host
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(got) != tc.want {
				t.Errorf("%s %s (host %q) reached %q, want %q", method, tc.target, tc.host, got, tc.want)
			}
		}
	}
	// The test listener routes by path as well.
	if _, got := get(t, c, testURL(r)+"/api/items"); got != "api /items" {
		t.Errorf("the test listener's /api/items reached %q", got)
	}
	// A path no app answers on a host: 404 as for an unknown host.
	delete(cfg.Apps, "shop.web")
	cfg.Production, cfg.Test = r.Config().Production, r.Config().Test
	if _, err := r.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, c, prodURL(r)+"/cart"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/cart without a root app answered %d, want 404", resp.StatusCode)
	}
}

func TestStickyCookieSharedByApps(t *testing.T) {
	app := func(path, blue, green string) *AppConfig {
		return &AppConfig{Path: path, Sticky: true, StickyCookie: "bg_shop", Fleets: map[string]*FleetConfig{
			"blue":  {Weight: 50, Targets: []string{blue}},
			"green": {Weight: 50, Targets: []string{green}},
		}}
	}
	cfg := &Config{Apps: map[string]*AppConfig{
		"shop.web": app("/", echoPathBackend(t, "blue"), echoPathBackend(t, "green")),
		"shop.api": app("/api", echoPathBackend(t, "blue"), echoPathBackend(t, "green")),
	}}
	r := startRouter(t, cfg)
	greens := 0
	for range 40 {
		c := session(t)
		_, first := get(t, c, prodURL(r)+"/")
		fleet := strings.Fields(first)[0]
		if fleet == "green" {
			greens++
		}
		for range 5 {
			for _, p := range []string{"/", "/api/x"} {
				if _, got := get(t, c, prodURL(r)+p); strings.Fields(got)[0] != fleet {
					t.Fatalf("a session pinned to %s by its page got %q from %s", fleet, got, p)
				}
			}
		}
	}
	if greens == 0 || greens == 40 {
		t.Fatalf("%d of 40 sessions went green at 50%%", greens)
	}
}

func TestPathAndNameValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		app  *AppConfig
		want string
	}{
		{"Shop.api", pathApp("127.0.0.1:1", "", false), "app name must be"},
		{"shop..api", pathApp("127.0.0.1:1", "", false), "app name must be"},
		{"shop.api", pathApp("127.0.0.1:1", "api", false), `path: "api" is not a path prefix`},
		{"shop.api", pathApp("127.0.0.1:1", "/api/", false), `path: "/api/" is not a path prefix`},
		{"shop.api", pathApp("127.0.0.1:1", "/a/../b", false), "is not a path prefix"},
		{"shop.api", pathApp("127.0.0.1:1", "/a?b", false), "is not a path prefix"},
	} {
		cfg := &Config{Production: "127.0.0.1:1", Apps: map[string]*AppConfig{tc.name: tc.app}}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: %v, want %q", tc.name, tc.app.Path, err, tc.want)
		}
	}
	cfg := &Config{Production: "127.0.0.1:1", Apps: map[string]*AppConfig{
		"shop.api.green": pathApp("127.0.0.1:1", "/api", true),
		"shop.v2":        pathApp("127.0.0.1:2", "/api", false),
		"shop.web":       pathApp("127.0.0.1:3", "/", false),
		"shop":           pathApp("127.0.0.1:4", "", false),
	}}
	err := cfg.Validate()
	for _, want := range []string{
		`apps.shop.v2: host "*" and path /api on 127.0.0.1:1 are claimed by app shop.api.green and by app shop.v2`,
		`apps.shop.web: host "*" on 127.0.0.1:1 is claimed by app shop and by app shop.web`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want %q", err, want)
		}
	}
}
