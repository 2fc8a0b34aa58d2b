package api

import (
	"context"
	"errors"
	"strings"
	"testing"

	"bluegreen/internal/auth"
	"bluegreen/internal/params"
)

func wantAPIError(t *testing.T, what string, err error, status int, code, mentions string) {
	t.Helper()
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != status || ae.Code != code || !strings.Contains(ae.Message, mentions) {
		t.Errorf("%s: %v (%+v); want %d %s mentioning %q", what, err, ae, status, code, mentions)
	}
}

func TestTokensAPI(t *testing.T) {
	e := newAPIEnv(t)
	ctx := context.Background()
	admin := e.client(e.token(t, "first", auth.Admin))

	made, err := admin.CreateToken(ctx, "dashboard", "viewer")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(made.Secret, auth.SecretPrefix) || made.Role != "viewer" || made.Name != "dashboard" || made.ID == "" {
		t.Fatalf("created token = %+v", made)
	}
	viewer := e.client(made.Secret)
	if _, err := viewer.Params(ctx, ""); err != nil {
		t.Fatalf("the new viewer token: %v", err)
	}
	_, err = viewer.Tokens(ctx)
	wantAPIError(t, "a viewer listing tokens", err, 403, CodeForbidden, "needs a token with role admin")

	list, err := admin.Tokens(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("tokens = %+v, %v", list, err)
	}
	for _, tok := range list {
		if tok.Secret != "" {
			t.Errorf("the list shows the secret of %s", tok.Name)
		}
		if tok.Name == "dashboard" && tok.LastUsedAt == nil {
			t.Errorf("the viewer's use is not recorded: %+v", tok)
		}
	}

	_, err = admin.CreateToken(ctx, "x", "root")
	wantAPIError(t, "an unknown role", err, 400, CodeInvalid, `"role": role "root": want viewer, deployer or admin`)
	_, err = admin.CreateToken(ctx, "", "viewer")
	wantAPIError(t, "no name", err, 400, CodeInvalid, `"name"`)
	_, err = admin.CreateToken(ctx, "two words", "viewer")
	wantAPIError(t, "a bad name", err, 400, CodeInvalid, `token name "two words"`)

	revoked, err := admin.RevokeToken(ctx, made.ID)
	if err != nil || revoked.RevokedAt == nil {
		t.Fatalf("revoke = %+v, %v", revoked, err)
	}
	_, err = viewer.Params(ctx, "")
	wantAPIError(t, "a revoked token", err, 401, CodeUnauthorized, "not valid")
	_, err = admin.RevokeToken(ctx, made.ID)
	wantAPIError(t, "revoking twice", err, 409, CodeConflict, "already revoked")
	_, err = admin.RevokeToken(ctx, "t-nope")
	wantAPIError(t, "revoking an unknown token", err, 404, CodeNotFound, "t-nope")

	// The last admin token cannot go: nobody could make tokens after it.
	var firstID string
	for _, tok := range list {
		if tok.Name == "first" {
			firstID = tok.ID
		}
	}
	_, err = admin.RevokeToken(ctx, firstID)
	wantAPIError(t, "revoking the last admin", err, 409, CodeLastAdmin, "last active admin token")
	second, err := admin.CreateToken(ctx, "second", "admin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RevokeToken(ctx, firstID); err != nil {
		t.Fatalf("revoking an admin token while another exists: %v", err)
	}
	if _, err := e.client(second.Secret).Tokens(ctx); err != nil {
		t.Fatalf("the second admin: %v", err)
	}
}

func TestParamsAPI(t *testing.T) {
	e := newAPIEnv(t)
	ctx := context.Background()
	deployer := e.client(e.token(t, "ci", auth.Deployer))
	viewer := e.client(e.token(t, "watcher", auth.Viewer))

	p, err := deployer.PutParam(ctx, "/shop/DB_URL", "postgres://db/shop", false, 0)
	if err != nil || p.Version != 1 || p.Type != "string" || p.CreatedBy != "ci" {
		t.Fatalf("put = %+v, %v", p, err)
	}
	if _, err := deployer.PutParam(ctx, "/shop/API_KEY", "s3cret-1", true, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := deployer.PutParam(ctx, "/shop/API_KEY", "s3cret-2", true, 1); err != nil {
		t.Fatal(err)
	}
	_, err = deployer.PutParam(ctx, "/shop/API_KEY", "lost", true, 1)
	wantAPIError(t, "a stale expect_version", err, 409, CodeConflict, "expected version 1, latest is 2")
	if _, err := deployer.PutParam(ctx, "/shopping/OTHER", "o", false, 0); err != nil {
		t.Fatal(err)
	}

	got, err := deployer.Param(ctx, "/shop/API_KEY", 0)
	if err != nil || got.Value == nil || *got.Value != "s3cret-2" || got.Version != 2 || got.Redacted {
		t.Fatalf("deployer reads the secure param: %+v, %v", got, err)
	}
	got, err = deployer.Param(ctx, "/shop/API_KEY", 1)
	if err != nil || *got.Value != "s3cret-1" {
		t.Fatalf("version 1: %+v, %v", got, err)
	}
	_, err = viewer.Param(ctx, "/shop/API_KEY", 0)
	wantAPIError(t, "a viewer reading a secure value", err, 403, CodeForbidden, "param /shop/API_KEY is secure")
	got, err = viewer.Param(ctx, "/shop/DB_URL", 0)
	if err != nil || *got.Value != "postgres://db/shop" {
		t.Fatalf("a viewer reads a plain param: %+v, %v", got, err)
	}

	for _, c := range []*Client{viewer, deployer} {
		list, err := c.Params(ctx, "/shop")
		if err != nil || len(list) != 2 {
			t.Fatalf("list = %+v, %v", list, err)
		}
		if list[0].Name != "/shop/API_KEY" || !list[0].Redacted || *list[0].Value != params.Redacted {
			t.Errorf("the secure param is listed as %+v; want it redacted", list[0])
		}
		if list[1].Name != "/shop/DB_URL" || *list[1].Value != "postgres://db/shop" {
			t.Errorf("the plain param is listed as %+v", list[1])
		}
	}
	if all, err := viewer.Params(ctx, ""); err != nil || len(all) != 3 {
		t.Fatalf("list of all = %+v, %v", all, err)
	}

	if _, err := deployer.DeleteParam(ctx, "/shop/DB_URL"); err != nil {
		t.Fatal(err)
	}
	_, err = deployer.DeleteParam(ctx, "/shop/DB_URL")
	wantAPIError(t, "deleting twice", err, 404, CodeNotFound, "already deleted")
	_, err = viewer.Param(ctx, "/shop/DB_URL", 0)
	wantAPIError(t, "reading a deleted param", err, 404, CodeNotFound, "deleted")
	if got, err := viewer.Param(ctx, "/shop/DB_URL", 1); err != nil || *got.Value != "postgres://db/shop" {
		t.Fatalf("an older version of a deleted param: %+v, %v", got, err)
	}
	hist, err := viewer.ParamHistory(ctx, "/shop/DB_URL")
	if err != nil || len(hist) != 2 || hist[1].Type != "deleted" || hist[0].Value != nil {
		t.Fatalf("history = %+v, %v", hist, err)
	}
	hist, err = viewer.ParamHistory(ctx, "/shop/API_KEY")
	if err != nil || len(hist) != 2 || hist[0].Value != nil {
		t.Fatalf("history of the secure one = %+v, %v", hist, err)
	}
	_, err = viewer.ParamHistory(ctx, "/shop/NEVER")
	wantAPIError(t, "history of a missing param", err, 404, CodeNotFound, "/shop/NEVER")

	// Bad input is named.
	_, err = deployer.PutParam(ctx, "/shop/9BAD", "x", false, 0)
	wantAPIError(t, "a bad name", err, 400, CodeInvalid, "not a valid environment variable name")
	_, err = viewer.Params(ctx, "shop")
	wantAPIError(t, "a prefix without /", err, 400, CodeInvalid, "must start with /")
	a := call(t, e.url, "GET", "/api/v1/params/shop/API_KEY?version=zero", "", "Bearer "+deployer.Token)
	if a.status != 400 || !strings.Contains(a.body.Message, "version") {
		t.Errorf("a bad version: %d %s", a.status, a.raw)
	}
	a = call(t, e.url, "PUT", "/api/v1/params/shop/X", `{"secure": true}`, "Bearer "+deployer.Token)
	if a.status != 400 || !strings.Contains(a.body.Message, `"value" is required`) {
		t.Errorf("no value: %d %s", a.status, a.raw)
	}
	a = call(t, e.url, "PUT", "/api/v1/params/shop/X", `{"value": "v", "colour": 1}`, "Bearer "+deployer.Token)
	if a.status != 400 || !strings.Contains(a.body.Message, "colour") {
		t.Errorf("an unknown field: %d %s", a.status, a.raw)
	}
}
