package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"bluegreen/internal/auth"
)

// routeCalls is one request per route, and the role each route needs. A
// route added to the server without a line here fails
// TestEveryRouteHasARole: decide who may call it, then add it.
var routeCalls = map[string]struct {
	role         auth.Role
	method, path string
	body         string
}{
	"GET /api/v1/healthz":                        {public, "GET", "/api/v1/healthz", ""},
	"POST /api/v1/revisions":                     {auth.Deployer, "POST", "/api/v1/revisions", ""},
	"GET /api/v1/apps":                           {auth.Viewer, "GET", "/api/v1/apps", ""},
	"GET /api/v1/apps/{app}":                     {auth.Viewer, "GET", "/api/v1/apps/shop", ""},
	"GET /api/v1/apps/{app}/revisions":           {auth.Viewer, "GET", "/api/v1/apps/shop/revisions", ""},
	"POST /api/v1/apps/{app}/revisions":          {auth.Deployer, "POST", "/api/v1/apps/shop/revisions", `{"image": "shop:2"}`},
	"GET /api/v1/apps/{app}/deployments":         {auth.Viewer, "GET", "/api/v1/apps/shop/deployments", ""},
	"POST /api/v1/apps/{app}/deployments":        {auth.Deployer, "POST", "/api/v1/apps/shop/deployments", `{"revision": 1}`},
	"GET /api/v1/apps/{app}/instances":           {auth.Viewer, "GET", "/api/v1/apps/shop/instances", ""},
	"GET /api/v1/apps/{app}/instances/{id}/logs": {auth.Viewer, "GET", "/api/v1/apps/shop/instances/i-1/logs", ""},
	"POST /api/v1/apps/{app}/promote":            {auth.Deployer, "POST", "/api/v1/apps/shop/promote", ""},
	"POST /api/v1/apps/{app}/abort":              {auth.Deployer, "POST", "/api/v1/apps/shop/abort", ""},
	"POST /api/v1/apps/{app}/rollback":           {auth.Deployer, "POST", "/api/v1/apps/shop/rollback", ""},
	"POST /api/v1/apps/{app}/pause":              {auth.Deployer, "POST", "/api/v1/apps/shop/pause", ""},
	"POST /api/v1/apps/{app}/resume":             {auth.Deployer, "POST", "/api/v1/apps/shop/resume", ""},
	"PUT /api/v1/apps/{app}/maintenance":         {auth.Deployer, "PUT", "/api/v1/apps/shop/maintenance", ""},
	"DELETE /api/v1/apps/{app}/maintenance":      {auth.Deployer, "DELETE", "/api/v1/apps/shop/maintenance", ""},
	"GET /api/v1/deployments/{id}":               {auth.Viewer, "GET", "/api/v1/deployments/d-1", ""},
	"GET /api/v1/events":                         {auth.Viewer, "GET", "/api/v1/events?after=0", ""},
	"GET /api/v1/apps/{app}/status":              {auth.Viewer, "GET", "/api/v1/apps/shop/status", ""},
	"GET /api/v1/status":                         {auth.Viewer, "GET", "/api/v1/status", ""},
	"GET /api/v1/apps/{app}/metrics":             {auth.Viewer, "GET", "/api/v1/apps/shop/metrics", ""},
	"GET /api/v1/metrics":                        {auth.Viewer, "GET", "/api/v1/metrics", ""},
	"GET /api/v1/prometheus/targets":             {auth.Viewer, "GET", "/api/v1/prometheus/targets", ""},
	"GET /api/v1/params":                         {auth.Viewer, "GET", "/api/v1/params?prefix=/shop/", ""},
	"GET /api/v1/params/{name...}":               {auth.Viewer, "GET", "/api/v1/params/shop/PLAIN", ""},
	"PUT /api/v1/params/{name...}":               {auth.Deployer, "PUT", "/api/v1/params/shop/PLAIN", `{"value": "v"}`},
	"DELETE /api/v1/params/{name...}":            {auth.Deployer, "DELETE", "/api/v1/params/shop/GONE", ""},
	"GET /api/v1/param-history/{name...}":        {auth.Viewer, "GET", "/api/v1/param-history/shop/PLAIN", ""},
	"POST /api/v1/tokens":                        {auth.Admin, "POST", "/api/v1/tokens", `{"name": "new", "role": "viewer"}`},
	"GET /api/v1/tokens":                         {auth.Admin, "GET", "/api/v1/tokens", ""},
	"DELETE /api/v1/tokens/{id}":                 {auth.Admin, "DELETE", "/api/v1/tokens/t-000000000000", ""},
	"POST /api/v1/router/upgrade":                {auth.Admin, "POST", "/api/v1/router/upgrade", ""},
	"/":                                          {auth.Viewer, "GET", "/api/v1/nonsense", ""},
}

func TestEveryRouteHasARole(t *testing.T) {
	var served []string
	for _, rt := range (&Server{}).routes() {
		served = append(served, rt.pattern)
		want, ok := routeCalls[rt.pattern]
		if !ok {
			t.Errorf("route %q has no line in routeCalls: decide which role may call it and add it there and to docs/api.md", rt.pattern)
			continue
		}
		if rt.role != want.role {
			t.Errorf("route %q needs role %q, the table says %q", rt.pattern, rt.role, want.role)
		}
	}
	for pattern := range routeCalls {
		if !slices.Contains(served, pattern) {
			t.Errorf("routeCalls has %q, which the server does not serve", pattern)
		}
	}
}

type answer struct {
	status int
	header http.Header
	body   Error
	raw    string
}

func call(t *testing.T, base, method, path, body, authorization string) answer {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// TestEveryRouteAndRole calls every route with no token, with bad ones and
// with a token of each role, through the real handler. A caller whose role
// suffices gets past the check (whatever the route then answers: 200, or
// 404 for the app that does not exist); others get exactly 401 or 403.
func TestEveryRouteAndRole(t *testing.T) {
	e := newAPIEnv(t)
	ctx := context.Background()
	roles := map[auth.Role]string{
		auth.Viewer:   e.token(t, "watcher", auth.Viewer),
		auth.Deployer: e.token(t, "ci", auth.Deployer),
		auth.Admin:    e.token(t, "root", auth.Admin),
	}
	revokedSecret := e.token(t, "old", auth.Admin)
	list, _ := e.tokens.List(ctx)
	for _, tok := range list {
		if tok.Name == "old" {
			if _, err := e.tokens.Revoke(ctx, tok.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Params the routes act on; a secure one for the viewer's refusal.
	admin := e.client(roles[auth.Admin])
	for _, name := range []string{"/shop/PLAIN", "/shop/GONE"} {
		if _, err := admin.PutParam(ctx, name, "x", false, 0); err != nil {
			t.Fatal(err)
		}
	}

	unauthenticated := map[string]string{
		"no header":      "",
		"empty bearer":   "Bearer ",
		"basic":          "Basic dXNlcjpwYXNz",
		"not a token":    "Bearer hello",
		"unknown token":  "Bearer bg_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"revoked token":  "Bearer " + revokedSecret,
		"token, no word": roles[auth.Admin],
	}
	for pattern, rc := range routeCalls {
		t.Run(pattern, func(t *testing.T) {
			for what, authz := range unauthenticated {
				a := call(t, e.url, rc.method, rc.path, rc.body, authz)
				if rc.role == public {
					if a.status == 401 || a.status == 403 {
						t.Errorf("public route, %s: %d %s", what, a.status, a.raw)
					}
					continue
				}
				if a.status != 401 || a.body.Code != CodeUnauthorized {
					t.Errorf("%s: %d %s; want 401 unauthorized", what, a.status, a.raw)
					continue
				}
				if got := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `Bearer realm="bluegreen"`) {
					t.Errorf("%s: WWW-Authenticate %q", what, got)
				}
				if !strings.Contains(a.body.Message, "admin.token") || !strings.Contains(a.body.Message, "token create") {
					t.Errorf("%s: 401 message does not say how to get a token: %s", what, a.body.Message)
				}
			}
			for _, role := range auth.Roles {
				a := call(t, e.url, rc.method, rc.path, rc.body, "Bearer "+roles[role])
				if role.Allows(rc.role) {
					if a.status == 401 || a.status == 403 {
						t.Errorf("role %s: %d %s; want past the check", role, a.status, a.raw)
					}
					continue
				}
				if a.status != 403 || a.body.Code != CodeForbidden {
					t.Errorf("role %s: %d %s; want 403 forbidden", role, a.status, a.raw)
					continue
				}
				names := map[auth.Role]string{auth.Viewer: "watcher", auth.Deployer: "ci"}
				for _, want := range []string{"role " + string(rc.role), "token " + names[role], "has role " + string(role)} {
					if !strings.Contains(a.body.Message, want) {
						t.Errorf("role %s: 403 message %q does not say %q", role, a.body.Message, want)
					}
				}
			}
		})
	}

	// Unknown and revoked tokens are refused alike: nothing says which.
	unknown := call(t, e.url, "GET", "/api/v1/apps", "", unauthenticated["unknown token"])
	revoked := call(t, e.url, "GET", "/api/v1/apps", "", unauthenticated["revoked token"])
	if unknown.raw != revoked.raw || unknown.header.Get("WWW-Authenticate") != revoked.header.Get("WWW-Authenticate") {
		t.Errorf("unknown and revoked tokens answer differently:\n%s\n%s", unknown.raw, revoked.raw)
	}
}
