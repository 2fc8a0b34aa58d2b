package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"bluegreen/internal/api"
)

// byOf is the "by" field of an event: who asked for it.
func byOf(e api.Event) map[string]any {
	by, _ := e.Fields["by"].(map[string]any)
	return by
}

// TestAuditTrail performs every kind of action with named tokens, through
// the command line, and reads back who did each and from where: in the
// API's events, in `bluegreen events` and in `bluegreen history`.
func TestAuditTrail(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	tokens, err := e.api.Tokens(ctx)
	if err != nil || len(tokens) != 1 {
		t.Fatalf("tokens: %v %v", tokens, err)
	}
	adminID := tokens[0].ID

	// Token changes, by the admin token the CLI finds in the data directory.
	newToken := func(name string) (secret, id string) {
		r := e.cli("token", "create", "--role", "deployer", "--name", name)
		if r.code != 0 {
			t.Fatalf("token create: %s", r.stderr)
		}
		toks, err := e.api.Tokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range toks {
			if tok.Name == name {
				id = tok.ID
			}
		}
		return strings.TrimSpace(r.stdout), id
	}
	ci, ciID := newToken("ci")
	ops, opsID := newToken("ops")
	as := func(secret string, args ...string) string { return e.mustCLI(append(args, "--token", secret)...) }

	// A param change, a revision upload and a deployment, by ci.
	as(ci, "params", "set", "/shop/GREETING", "hello")
	as(ci, "deploy", e.bundleDir("v1", e.specFor(quick), nil), "--wait")
	// v2 waits for approval; ops promotes it, then rolls it back while
	// blue is warm.
	manual := "bake: 1s\nretire:\n  keep_blue: 1h\n  drain_timeout: 2s\nstrategy:\n  approval: manual\n"
	v2 := deploymentID(t, as(ci, "deploy", e.bundleDir("v2", e.specFor(manual), nil)))
	e.waitPhase(v2, time.Minute, "AwaitingApproval")
	as(ops, "promote", "shop")
	e.waitPhase(v2, time.Minute, "Retiring")
	as(ops, "rollback", "shop")
	if d := e.waitEnd(v2, time.Minute); d.Outcome != "rolled_back" || d.Reason != "rollback requested while blue was warm (by ops from 127.0.0.1)" {
		t.Fatalf("v2 ended %s: %q", d.Outcome, d.Reason)
	}
	// v3 is aborted by ops, with a reason.
	v3 := deploymentID(t, as(ci, "deploy", e.bundleDir("v3", e.specFor(manual), nil)))
	e.waitPhase(v3, time.Minute, "AwaitingApproval")
	as(ops, "abort", "shop", "--reason", "not before the release notes")
	if d := e.waitEnd(v3, time.Minute); d.Reason != "aborted: not before the release notes (by ops from 127.0.0.1)" {
		t.Fatalf("v3 ended %s: %q", d.Outcome, d.Reason)
	}
	// A param change through a proxy: the address is the connection's; what
	// the proxy says of the client is kept beside it, unverified.
	req, _ := http.NewRequest(http.MethodPut, e.api.Base+"/api/v1/params/shop/GREETING", strings.NewReader(`{"value": "hi"}`))
	req.Header.Set("Authorization", "Bearer "+ci)
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT param: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	e.mustCLI("token", "revoke", opsID)

	// The API: each action's event says who, by name and ID, and from where.
	evs, err := e.api.Events(ctx, "", "", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	type who struct{ kind, token, id string }
	var got []who
	var forwarded []string
	for _, ev := range evs {
		by := byOf(ev)
		if by == nil {
			continue
		}
		if by["remote"] != "127.0.0.1" {
			t.Errorf("%s %q: remote %v", ev.Kind, ev.Message, by["remote"])
		}
		if f, ok := by["forwarded_for"].(string); ok {
			forwarded = append(forwarded, ev.Kind+" "+f)
		}
		kind := ev.Kind
		if ev.Kind == "request" {
			kind += "." + fmt.Sprint(ev.Fields["request"])
		}
		got = append(got, who{kind, fmt.Sprint(by["token"]), fmt.Sprint(by["token_id"])})
	}
	want := []who{
		{"token.create", "admin", adminID}, {"token.create", "admin", adminID},
		{"param.put", "ci", ciID},
		{"revision.created", "ci", ciID}, {"deployment.created", "ci", ciID},
		{"revision.created", "ci", ciID}, {"deployment.created", "ci", ciID},
		{"request.promote", "ops", opsID}, {"request.abort", "ops", opsID},
		{"revision.created", "ci", ciID}, {"deployment.created", "ci", ciID},
		{"request.abort", "ops", opsID},
		{"param.put", "ci", ciID},
		{"token.revoke", "admin", adminID},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("who did what:\n got %v\nwant %v", got, want)
	}
	if len(forwarded) != 1 || forwarded[0] != "param.put 203.0.113.7" {
		t.Errorf("forwarded_for kept: %v", forwarded)
	}
	ds, err := e.api.Deployments(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.StartedBy == nil || d.StartedBy.Token != "ci" || d.StartedBy.TokenID != ciID || d.StartedBy.Remote != "127.0.0.1" {
			t.Errorf("deployment %s started by %+v", d.ID, d.StartedBy)
		}
	}
	for _, secret := range []string{ci, ops} {
		for _, ev := range evs {
			if strings.Contains(fmt.Sprint(ev), secret) {
				t.Errorf("a token's secret is in event %s", ev.Kind)
			}
		}
	}

	// The command line says it too.
	lines := e.mustCLI("events", "--tail", "0")
	// Columns are padded: compare words.
	squeeze := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	for _, line := range []string{
		"- token.create         token " + ciID + " (ci) created with role deployer (by admin from 127.0.0.1)",
		"- param.put            /shop/GREETING version 1 (by ci from 127.0.0.1)",
		"shop deployment.created   deploying revision 2 over revision 1 (by ci from 127.0.0.1)",
		"shop request             promote: approved (by ops from 127.0.0.1)",
		"shop request             abort: rollback requested while blue was warm (by ops from 127.0.0.1)",
		"shop request             abort: aborted: not before the release notes (by ops from 127.0.0.1)",
		"- token.revoke         token " + opsID + " (ops) revoked (by admin from 127.0.0.1)",
	} {
		if !strings.Contains(squeeze(lines), squeeze(line)) {
			t.Errorf("bluegreen events has no line with %q:\n%s", line, lines)
		}
	}
	history := e.mustCLI("history", "shop")
	for _, s := range []string{"BY", "ci from 127.0.0.1", "rollback requested while blue was warm (by ops from 127.0.0.1)",
		"aborted: not before the release notes (by ops from 127.0.0.1)"} {
		if !strings.Contains(history, s) {
			t.Errorf("bluegreen history has no %q:\n%s", s, history)
		}
	}
	if n := strings.Count(history, "ci from 127.0.0.1"); n != 3 {
		t.Errorf("history names ci as the starter of %d deployments, want 3:\n%s", n, history)
	}
}

// TestDashboardShowsWhoDidWhat: the dashboard's event log says who
// promoted a deployment (here, the person clicking in the dashboard), and
// its history who started it.
func TestDashboardShowsWhoDidWhat(t *testing.T) {
	e := newDeployEnv(t)
	e.deployLive("v1", e.specFor(quick))
	ci, err := e.api.CreateToken(context.Background(), "ci", "deployer")
	if err != nil {
		t.Fatal(err)
	}
	asCI := api.NewClient(e.api.Base)
	asCI.Token = ci.Secret
	ctx := context.Background()
	rev, err := asCI.UploadRevision(ctx, strings.NewReader(string(e.bundle("v2", e.specFor(quick+"strategy:\n  approval: manual\n"), nil))), "v2")
	if err != nil {
		t.Fatal(err)
	}
	d, err := asCI.Deploy(ctx, "shop", rev.Generation)
	if err != nil {
		t.Fatal(err)
	}
	e.waitPhase(d.ID, time.Minute, "AwaitingApproval")

	b := newBrowser(t, 90*time.Second)
	login(t, b, e.api.Base, e.api.Token)
	run(t, b, "opening the app page", chromedp.Navigate(e.api.Base+"/ui/apps/shop"), chromedp.WaitVisible(chromedp.ID("btn-promote")))
	waitJS(t, b, "the history says who started v2",
		`[...document.querySelectorAll('#history tbody td')].some((td) => td.textContent.includes('started by ci from 127.0.0.1'))`)
	run(t, b, "clicking Promote and confirming",
		chromedp.Click(chromedp.ID("btn-promote")),
		chromedp.WaitVisible(chromedp.ID("confirm-ok")),
		chromedp.Click(chromedp.ID("confirm-ok")),
	)
	waitJS(t, b, "the event log says who promoted",
		`[...document.querySelectorAll('#events li')].some((li) => li.textContent.includes('promote: approved (by admin from 127.0.0.1 via the dashboard)'))`)
	if got := e.waitEnd(d.ID, time.Minute); got.Outcome != "succeeded" {
		t.Fatalf("v2: %s (%s)", got.Outcome, got.Reason)
	}
}
