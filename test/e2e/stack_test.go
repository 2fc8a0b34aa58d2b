package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"bluegreen/internal/api"
	"bluegreen/internal/platform/docker/scratch"
	"bluegreen/internal/testdocker"
	"bluegreen/internal/testwait"
)

// The stack of examples/stack under test: web, a front end that calls api,
// its back end, on every request and answers X-Stack: WEB/API (each one's
// version). A mixed answer is one whose two versions differ.

// stackSpec is the example stack on the test's listeners, with a health
// check fast enough for tests and patient enough for a busy machine (each
// instance of a stack is checked through its public route and its
// addresses); apiEnv is api's env (a YAML flow mapping).
func (e *deployEnv) stackSpec(apiEnv, extra string) string {
	if apiEnv == "" {
		apiEnv = "{}"
	}
	return fmt.Sprintf(`app: shop
router:
  production: %s
  test: %s
  sticky: true
health:
  path: /healthz
  interval: 500ms
  timeout: 500ms
  healthy_threshold: 1
  unhealthy_threshold: 3
  startup_timeout: 20s
services:
  web:
    process:
      command: ["./stack", "web", "-api", "${services.api.url}"]
      instances: 2
      stop_timeout: 5s
    router: {}
    depends_on: [api]
  api:
    process:
      command: ["./stack", "api"]
      instances: 2
      env: %s
      stop_timeout: 5s
    router: { path: /api, strip_prefix: true }
%s`, e.prod, e.test, apiEnv, extra)
}

// stackBundle is a .tar.gz of the stack program, its VERSION, a spec and
// hook scripts (hooks/NAME: body, executable).
func (e *deployEnv) stackBundle(version, spec string, hooks map[string]string) []byte {
	t := e.t
	t.Helper()
	prog, err := os.ReadFile(bin.stack)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	type file struct {
		name string
		mode int64
		data []byte
	}
	files := []file{{"stack", 0o755, prog}, {"VERSION", 0o644, []byte(version + "\n")}, {"bluegreen.yaml", 0o644, []byte(spec)}}
	for name, body := range hooks {
		files = append(files, file{"hooks/" + name, 0o755, []byte(body)})
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// deployStack uploads a revision of the stack and starts its deployment.
func (e *deployEnv) deployStack(version, spec string) api.Deployment {
	e.t.Helper()
	return e.deployStackHooks(version, spec, nil)
}

// deployStackHooks is deployStack with hook scripts in the bundle.
func (e *deployEnv) deployStackHooks(version, spec string, hooks map[string]string) api.Deployment {
	t := e.t
	t.Helper()
	ctx := context.Background()
	rev, err := e.api.UploadRevision(ctx, bytes.NewReader(e.stackBundle(version, spec, hooks)), version)
	if err != nil {
		t.Fatalf("uploading %s: %v", version, err)
	}
	d, err := e.api.Deploy(ctx, rev.App, rev.Generation)
	if err != nil {
		t.Fatalf("deploying %s: %v", version, err)
	}
	return d
}

// deployStackLive deploys a version of the stack and waits until it
// succeeded.
func (e *deployEnv) deployStackLive(version, spec string) api.Deployment {
	e.t.Helper()
	d := e.waitEnd(e.deployStack(version, spec).ID, 60*time.Second)
	if d.Outcome != "succeeded" {
		e.t.Fatalf("deploying %s: %s (%s)\n%s", version, d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	return d
}

// stacked is a version as X-Stack says it: web's and api's the same.
func stacked(v string) string { return v + "/" + v }

// mixedAnswers lists the answers whose front end and back end versions
// differ.
func mixedAnswers(recs []loadRecord) []loadRecord {
	var out []loadRecord
	for _, r := range recs {
		web, back, ok := strings.Cut(r.version, "/")
		if ok && back != "-" && web != back {
			out = append(out, r)
		}
	}
	return out
}

// between keeps the records that started in [from, to).
func between(recs []loadRecord, from, to time.Time) []loadRecord {
	var out []loadRecord
	for _, r := range recs {
		if !r.start.Before(from) && r.start.Before(to) {
			out = append(out, r)
		}
	}
	return out
}

// stackQuick makes a stack's lifecycle short enough for tests, with checks
// that judge each service every second.
const stackQuick = `checks:
  interval: 1s
  min_requests: 5
  failure_limit: 2
  rules:
    - error_rate: { max: 0.05 }
` + quick

// A stack through a canary of several steps, an automatic rollback
// triggered by its back end's error rate, and a rollback asked for while
// blue is warm, all under continuous load on the production listener and
// on the test listener: no request fails but the back end's own errors,
// and no answer ever mixes a front end of one version with a back end of
// another.
func TestStackUnderLoad(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	e.deployStackLive("v1", e.stackSpec("", stackQuick))
	// v1 was the green of its own deployment: the test listener served it
	// until the push that makes it live, just after the deployment ended.
	testwait.For(t, 10*time.Second, "the test listener to serve no one", func() bool {
		resp, err := http.Get("http://" + e.test + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNotFound
	})
	prod := startLoad(t, "http://"+e.prod+"/", 200, "-header", "X-Stack")
	test := startLoad(t, "http://"+e.test+"/", 50, "-header", "X-Stack")

	// 1. A canary: 10 %, 50 %, 100 %, each step held 2 s and judged.
	canary := "strategy:\n  steps:\n    - { weight: 10, pause: 2s }\n    - { weight: 50, pause: 2s }\n    - { weight: 100 }\n"
	start := time.Now()
	d := e.deployStack("v2", e.stackSpec("", stackQuick+canary))
	d = e.waitEnd(d.ID, 90*time.Second)
	if d.Outcome != "succeeded" {
		t.Fatalf("v2: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	canaryEnd := time.Now()
	canaryEvents := e.events(d.ID)
	st, err := e.api.Status(ctx, "shop", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Services) != 2 || st.Services[0].Name != "api" || st.Services[1].Name != "web" || st.Services[0].Path != "/api" ||
		st.Services[0].LiveAddress == "" || len(st.Services[1].Fleets) == 0 || len(st.Services[1].Fleets[0].Instances) != 2 {
		t.Errorf("status of the stack: %+v", st.Services)
	}

	// 2. A back end that fails one request in four: its checks fail, and
	// the whole stack rolls back.
	faulty := "strategy:\n  steps:\n    - { weight: 50, pause: 1m }\n    - { weight: 100 }\n"
	d = e.deployStack("v3", e.stackSpec("{ STACK_FAIL_EVERY: \"4\" }", stackQuick+faulty))
	d = e.waitEnd(d.ID, 90*time.Second)
	if d.Outcome != "rolled_back" || !strings.Contains(d.Reason, "api: error_rate.max") {
		t.Fatalf("v3: %s (%s), want rolled back for api's error rate\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	t.Logf("v3 rolled back: %s", d.Reason)
	faultyEnd := time.Now()

	// 3. A good v4 goes live; while v2 is kept warm, a person rolls back.
	warm := "strategy: { preset: AllAtOnce }\n"
	spec := strings.Replace(e.stackSpec("", stackQuick+warm), "keep_blue: 0s", "keep_blue: 1m", 1)
	d = e.deployStack("v4", spec)
	e.waitPhase(d.ID, 60*time.Second, "Retiring")
	testwait.For(t, 10*time.Second, "v4 to answer in production", func() bool {
		resp, err := http.Get("http://" + e.prod + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.Header.Get("X-Stack") == stacked("v4")
	})
	if _, err := e.api.Rollback(ctx, "shop", 0); err != nil {
		t.Fatal(err)
	}
	if d = e.waitEnd(d.ID, 60*time.Second); d.Outcome != "rolled_back" {
		t.Fatalf("v4: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	if a, _ := e.api.App(ctx, "shop"); a.LiveRevision != 2 {
		t.Fatalf("after the rollback revision %d is live, want 2", a.LiveRevision)
	}
	testwait.For(t, 10*time.Second, "a second of load after the rollback", func() bool { return time.Since(faultyEnd) > time.Second })
	end := time.Now()
	e.checkInstances("after the rollback")

	recs, testRecs := prod.stop(), test.stop()
	// Production: nothing fails but green's back end's own errors (v3's),
	// and nothing is mixed.
	for name, w := range map[string][2]time.Time{"canary": {start, canaryEnd}, "automatic rollback": {canaryEnd, faultyEnd}, "rollback while blue is warm": {faultyEnd, end}} {
		part := between(recs, w[0], w[1])
		var own, other []loadRecord
		for _, r := range failures(part) {
			if r.version == stacked("v3") {
				own = append(own, r)
			} else {
				other = append(other, r)
			}
		}
		if len(other) > 0 {
			t.Errorf("%s: %d requests failed: %s", name, len(other), summary(other))
		}
		if m := mixedAnswers(part); len(m) > 0 {
			t.Errorf("%s: %d mixed answers: %s", name, len(m), summary(m))
		}
		t.Logf("%s: %s; 0 mixed; %d failed, all %d of them v3's back end's own errors", name, summary(part), len(own), len(own))
	}
	checkShares(t, recs, trafficSteps(canaryEvents), canaryEnd, stacked("v1"), stacked("v2"))
	// The test listener serves green alone, whole: never mixed, never blue.
	if m := mixedAnswers(testRecs); len(m) > 0 {
		t.Errorf("test listener: %d mixed answers: %s", len(m), summary(m))
	}
	served := 0
	for _, r := range testRecs {
		if r.status == http.StatusOK {
			served++
			if r.version == stacked("v1") {
				t.Errorf("the test listener answered with blue's %s at %s", r.version, r.start.Format("15:04:05.000"))
			}
		}
	}
	if served == 0 {
		t.Errorf("the test listener never served green: %s", summary(testRecs))
	}
	t.Logf("test listener: %s; 0 mixed", summary(testRecs))
}

// kill -9 of the server while a stack's traffic is split: the deployment
// resumes and finishes, no request fails or mixes versions, and nothing
// runs that is not a listed instance.
func TestStackServerKilledMidShift(t *testing.T) {
	e := newRaceDeployEnv(t)
	ctx := context.Background()
	e.deployStackLive("v1", e.stackSpec("", stackQuick))
	l := startLoad(t, "http://"+e.prod+"/", 200, "-header", "X-Stack")
	steps := "strategy:\n  steps:\n    - { weight: 30, pause: {} }\n    - { weight: 60, pause: 2s }\n    - { weight: 100 }\n"
	d := e.deployStack("v2", e.stackSpec("", stackQuick+steps))
	e.waitPhase(d.ID, 60*time.Second, "Shifting")
	testwait.For(t, 20*time.Second, "green at 30%", func() bool {
		d, _ := e.api.Deployment(ctx, d.ID)
		return detailsOf(t, d).Weight == 30
	})
	e.restart(d.ID, "Shifting")
	if _, err := e.api.Promote(ctx, "shop", false); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 20*time.Second, "green at 60%", func() bool {
		d, _ := e.api.Deployment(ctx, d.ID)
		return detailsOf(t, d).Weight == 60
	})
	e.restart(d.ID, "Shifting")
	if d = e.waitEnd(d.ID, 60*time.Second); d.Outcome != "succeeded" {
		t.Fatalf("v2: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	e.checkInstances("after v2 succeeded")
	if n := len(e.instances()); n != 4 {
		t.Fatalf("%d instances after the deployment, want 4 (2 web, 2 api)", n)
	}
	recs := l.stop()
	if f := failures(recs); len(f) > 0 {
		t.Fatalf("%d of %d requests failed across the server kills: %s", len(f), len(recs), summary(f))
	}
	if m := mixedAnswers(recs); len(m) > 0 {
		t.Fatalf("%d mixed answers: %s", len(m), summary(m))
	}
	t.Logf("%s; 0 failed, 0 mixed across 2 server kills mid-shift", summary(recs))
}

// A browser pinned to blue gets blue's pages and blue's API answers alike
// until blue loses its weight; then green's, both. On the way, the stack's
// hooks run once with every service's targets, and api's own hook with
// api's.
func TestStackStickySessions(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	// No checks: the browsers are the only traffic, too little to judge.
	e.deployStackLive("v1", e.stackSpec("", quick))
	steps := "strategy:\n  steps:\n    - { weight: 50, pause: {} }\n    - { weight: 100 }\n"
	out := t.TempDir() + "/hooks.txt"
	env := fmt.Sprintf("#!/bin/sh\necho \"$1 service=$BG_SERVICE services=$BG_SERVICES green=$BG_GREEN_TARGETS api=$BG_GREEN_TARGETS_API web=$BG_GREEN_TARGETS_WEB api_url=$BG_GREEN_URL_API blue_api=$BG_BLUE_TARGETS_API blue=$BG_BLUE_REVISION\" >> %s\n", out)
	spec := strings.Replace(e.stackSpec("", quick+steps+"hooks:\n  validate_service: [{ run: ./hooks/env.sh stack }]\n"),
		"    router: { path: /api, strip_prefix: true }\n",
		"    router: { path: /api, strip_prefix: true }\n    hooks:\n      validate_service: [{ run: ./hooks/env.sh api }]\n", 1)
	d := e.deployStackHooks("v2", spec, map[string]string{"env.sh": env})
	testwait.For(t, 60*time.Second, "green at 50%", func() bool {
		d, _ := e.api.Deployment(ctx, d.ID)
		return detailsOf(t, d).Weight == 50
	})
	type browser struct {
		c    *http.Client
		page string // X-Stack of its first page
	}
	visit := func(b *browser) (page, apiVersion string) {
		t.Helper()
		for _, path := range []string{"/", "/api/version"} {
			resp, err := b.c.Get("http://" + e.prod + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %s", path, resp.Status)
			}
			if path == "/" {
				page = resp.Header.Get("X-Stack")
			} else {
				apiVersion = resp.Header.Get("X-Version")
			}
		}
		return page, apiVersion
	}
	var blue, green []*browser
	for range 40 {
		jar, _ := cookiejar.New(nil)
		b := &browser{c: &http.Client{Jar: jar}}
		page, apiV := visit(b)
		b.page = page
		web, _, _ := strings.Cut(page, "/")
		if web != apiV {
			t.Fatalf("a new browser got page %s and API %s", page, apiV)
		}
		if page == stacked("v1") {
			blue = append(blue, b)
		} else {
			green = append(green, b)
		}
	}
	if len(blue) < 5 || len(green) < 5 {
		t.Fatalf("at 50%%, %d browsers went blue and %d green, want both", len(blue), len(green))
	}
	for round := range 10 {
		for _, group := range [][]*browser{blue, green} {
			for _, b := range group {
				page, apiV := visit(b)
				want, _, _ := strings.Cut(b.page, "/")
				if page != b.page || apiV != want {
					t.Fatalf("round %d: a browser pinned to %s got page %s and API %s", round, b.page, page, apiV)
				}
			}
		}
	}
	t.Logf("at 50%%: %d browsers pinned to blue and %d to green kept their colour for pages and API calls over 10 rounds", len(blue), len(green))
	if _, err := e.api.Promote(ctx, "shop", false); err != nil {
		t.Fatal(err)
	}
	if d = e.waitEnd(d.ID, 60*time.Second); d.Outcome != "succeeded" {
		t.Fatalf("v2: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	for _, b := range blue {
		if page, apiV := visit(b); page != stacked("v2") || apiV != "v2" {
			t.Fatalf("once blue lost its weight, a browser pinned to it got page %s and API %s, want v2 for both", page, apiV)
		}
	}

	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "stack service= ") || !strings.HasPrefix(lines[1], "api service=api ") {
		t.Fatalf("the hooks ran as:\n%s\nwant the stack's once, then api's", b)
	}
	vars := func(line string) map[string]string {
		m := map[string]string{}
		for _, f := range strings.Fields(line)[1:] {
			k, v, _ := strings.Cut(f, "=")
			m[k] = v
		}
		return m
	}
	count := func(list string) int { return len(strings.FieldsFunc(list, func(r rune) bool { return r == ',' })) }
	stack, own := vars(lines[0]), vars(lines[1])
	if stack["services"] != "api,web" || count(stack["green"]) != 4 || count(stack["api"]) != 2 || count(stack["web"]) != 2 ||
		count(stack["blue_api"]) != 2 || stack["blue"] != "1" || !strings.HasPrefix(stack["api_url"], "http://127.0.0.1:") {
		t.Errorf("the stack's hook got %v", stack)
	}
	if own["green"] != stack["api"] || own["services"] != "api,web" {
		t.Errorf("api's own hook got %v; want api's targets alone (%s)", own, stack["api"])
	}
	t.Logf("hooks: %s", strings.Join(lines, " | "))
}

// bluegreen validate refuses a stack with a dependency cycle, naming the
// file, line and column.
func TestStackValidateRefusesCycle(t *testing.T) {
	dir := t.TempDir()
	spec := "app: shop\nservices:\n  web:\n    process: {command: [./stack, web]}\n    router: {}\n    depends_on: [api]\n  api:\n    process: {command: [./stack, api]}\n    depends_on: [web]\n"
	if err := os.WriteFile(dir+"/bluegreen.yaml", []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	out := runIn(t, dir, 1, "validate")
	want := "bluegreen.yaml:6:18: services.web.depends_on[0]: dependency cycle: api → web → api"
	if !strings.Contains(out, want) {
		t.Fatalf("validate said:\n%s\nwant %q", out, want)
	}
}

// The dashboard shows a stack's services while it shifts: each with the
// path it answers, each fleet's share, health and address, and the
// revisions' services in the history.
func TestStackDashboard(t *testing.T) {
	e := newDeployEnv(t)
	e.deployStackLive("v1", e.stackSpec("", quick))
	startLoad(t, "http://"+e.prod+"/", 50)
	steps := "strategy:\n  steps:\n    - { weight: 50, pause: {} }\n    - { weight: 100 }\n"
	d := e.deployStack("v2", e.stackSpec("", quick+steps))
	testwait.For(t, 60*time.Second, "green at 50%", func() bool {
		d, _ := e.api.Deployment(context.Background(), d.ID)
		return detailsOf(t, d).Weight == 50
	})
	ctx := newBrowser(t, 100*time.Second)
	admin, err := os.ReadFile(e.data + "/admin.token")
	if err != nil {
		t.Fatal(err)
	}
	login(t, ctx, e.api.Base, strings.TrimSpace(string(admin)))
	run(t, ctx, "opening the app page", chromedp.Navigate(e.api.Base+"/ui/apps/shop"), chromedp.WaitVisible(chromedp.ID("services-card")))
	waitJS(t, ctx, "the services card shows api at /api and web at /, each with blue and green at 50%, healthy, with their addresses",
		`(() => {
			const rows = [...document.querySelectorAll('#services tbody tr')];
			const of = (s) => rows.filter((r) => r.dataset.service === s).map((r) => r.textContent);
			const ok = (s, path) => { const t = of(s); return t.length === 2 && t[0].includes(path) && t.every((x) => x.includes('50%') && x.includes('2/2') && x.includes('http://127.0.0.1:')); };
			return ok('api', '/api') && ok('web', '/') && document.getElementById('services').textContent.includes('Live addresses');
		})()`)
	waitJS(t, ctx, "the history says what each revision runs", `document.getElementById('history').textContent.includes('stack: api, web')`)
}

// An app of one service becomes a stack in an ordinary deployment, and a
// stack an app of one service again, under load: the single service and
// the stack's service at / share one route while traffic shifts, and no
// request fails.
func TestAppBecomesStackAndBack(t *testing.T) {
	e := newDeployEnv(t)
	single := fmt.Sprintf(`app: shop
process:
  command: ["./stack", "api"]
  instances: 2
  stop_timeout: 5s
router:
  production: %s
  test: %s
health:
  path: /healthz
  interval: 500ms
  timeout: 500ms
  healthy_threshold: 1
  unhealthy_threshold: 3
  startup_timeout: 20s
%s`, e.prod, e.test, quick)
	steps := "strategy:\n  steps:\n    - { weight: 50, pause: 2s }\n    - { weight: 100 }\n"
	e.deployStackLive("v1", single)
	l := startLoad(t, "http://"+e.prod+"/", 100)
	e.deployStackLive("v2", e.stackSpec("", quick+steps))
	stackLive := time.Now()
	e.checkInstances("as a stack")
	e.deployStackLive("v3", single+steps)
	testwait.For(t, 10*time.Second, "a second of load after the last deployment", func() bool { return time.Since(stackLive) > time.Second })
	recs := l.stop()
	if f := failures(recs); len(f) > 0 {
		t.Fatalf("%d of %d requests failed: %s", len(f), len(recs), summary(f))
	}
	seen := map[string]bool{}
	for _, r := range recs {
		seen[r.version] = true
	}
	if !seen["v1"] || !seen["v2"] || !seen["v3"] {
		t.Fatalf("not every version answered: %s", summary(recs))
	}
	if n := len(e.instances()); n != 2 {
		t.Fatalf("%d instances after the stack became an app of one service again, want 2", n)
	}
	e.checkInstances("an app of one service again")
	t.Logf("%s; 0 failed", summary(recs))
}

// A stack of containers: each service runs its own image, pinned per
// service when the revision is made; under load through a canary, no
// request fails or mixes versions, and the engine's containers are the
// listed instances.
func TestStackOfContainers(t *testing.T) {
	eng := testdocker.Shared(t)
	prog := testdocker.GoBinary(t, "bluegreen/examples/stack")
	for _, v := range []string{"1", "2"} {
		eng.Build(t, scratch.Options{Binary: prog, Files: map[string]string{"/VERSION": "v" + v + "\n"}, Tags: []string{"stack:" + v}})
	}
	e := newDockerEnv(t, bin.bluegreen, eng, "stack:1")
	spec := func(v, extra string) string {
		return fmt.Sprintf(`app: shop
platform: docker
router:
  production: %s
  test: %s
health:
  path: /healthz
  interval: 500ms
  timeout: 500ms
  healthy_threshold: 1
  unhealthy_threshold: 3
  startup_timeout: 30s
services:
  web:
    docker:
      image: stack:%s
      command: ["web", "-api", "${services.api.url}"]
      instances: 2
      stop_timeout: 5s
    router: {}
    depends_on: [api]
  api:
    docker:
      image: stack:%s
      command: ["api"]
      instances: 2
      stop_timeout: 5s
    router: { path: /api, strip_prefix: true }
%s`, e.prod, e.test, v, v, extra)
	}
	e.deployStackLive("v1", spec("1", quick))
	l := startLoad(t, "http://"+e.prod+"/", 100, "-header", "X-Stack")
	e.deployStackLive("v2", spec("2", quick+"strategy:\n  steps:\n    - { weight: 50, pause: 2s }\n    - { weight: 100 }\n"))
	e.checkInstances("after v2 succeeded")
	revs, err := e.api.Revisions(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range revs {
		if r.Image != nil || len(r.Images) != 2 || r.Images["api"].ID == "" || r.Images["web"].Ref != fmt.Sprintf("stack:%d", r.Generation) {
			t.Errorf("revision %d pinned %+v, %+v; want an image per service", r.Generation, r.Image, r.Images)
		}
	}
	recs := l.stop()
	if f := failures(recs); len(f) > 0 {
		t.Fatalf("%d of %d requests failed: %s", len(f), len(recs), summary(f))
	}
	if m := mixedAnswers(recs); len(m) > 0 {
		t.Fatalf("%d mixed answers: %s", len(m), summary(m))
	}
	t.Logf("%s; 0 failed, 0 mixed", summary(recs))
}
