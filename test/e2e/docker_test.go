package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/moby/moby/client"

	"bluegreen/internal/api"
	"bluegreen/internal/platform/docker/scratch"
	"bluegreen/internal/testdocker"
	"bluegreen/internal/testregistry"
	"bluegreen/internal/testwait"
)

// helloImages builds the example app into images on the engine: hello:1
// and hello:2 answer X-Version v1 and v2; hello:latest names hello:1.
// It returns their image IDs.
func helloImages(t *testing.T, eng *testdocker.Engine) (v1, v2 string) {
	t.Helper()
	prog := testdocker.GoBinary(t, "bluegreen/examples/hello")
	v1 = eng.Build(t, scratch.Options{Binary: prog, Files: map[string]string{"/VERSION": "v1\n"}, Tags: []string{"hello:1", "hello:latest"}})
	v2 = eng.Build(t, scratch.Options{Binary: prog, Files: map[string]string{"/VERSION": "v2\n"}, Tags: []string{"hello:2"}})
	if v1 == v2 {
		t.Fatal("hello:1 and hello:2 are the same image")
	}
	return v1, v2
}

// newDockerEnv is a server whose apps run as containers on eng (named by
// DOCKER_HOST, as a user's shell would), with specs naming image.
func newDockerEnv(t *testing.T, binary string, eng *testdocker.Engine, image string) *deployEnv {
	t.Helper()
	return startDeployEnv(t, binary, func(e *deployEnv) {
		e.docker, e.image = eng, image
		e.env = []string{"DOCKER_HOST=" + eng.Host}
	})
}

// owner is the identity the server labels its containers with.
func (e *deployEnv) owner() string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.data, "server.id"))
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// containers lists the server's containers on its engine that run.
func (e *deployEnv) containers() []string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := e.docker.Client(e.t).ContainerList(ctx, client.ContainerListOptions{
		Filters: make(client.Filters).Add("label", "io.bluegreen.owner="+e.owner()),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, c := range res.Items {
		out = append(out, c.Labels["io.bluegreen.instance"]+" "+c.ImageID)
	}
	sort.Strings(out)
	return out
}

// containerIDs lists the IDs of the server's running containers.
func (e *deployEnv) containerIDs() []string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := e.docker.Client(e.t).ContainerList(ctx, client.ContainerListOptions{
		Filters: make(client.Filters).Add("label", "io.bluegreen.owner="+e.owner()),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, c := range res.Items {
		out = append(out, c.ID)
	}
	sort.Strings(out)
	return out
}

// checkContainers checks that the engine runs exactly the listed running
// instances, each once.
func (e *deployEnv) checkContainers(when string) {
	e.t.Helper()
	var want []string
	testwait.For(e.t, 30*time.Second, when+": the containers to match the instances", func() bool {
		want = want[:0]
		for _, in := range e.instances() {
			if in.State == "running" {
				want = append(want, in.ID)
			}
		}
		sort.Strings(want)
		var got []string
		for _, c := range e.containers() {
			got = append(got, strings.Fields(c)[0])
		}
		return fmt.Sprint(got) == fmt.Sprint(want)
	})
}

// imagesRunning is the set of image IDs the server's containers run.
func (e *deployEnv) imagesRunning() []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range e.containers() {
		id := strings.Fields(c)[1]
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// An image's canary under load: green is proved on the test listener
// before users see it, the shift loses nothing, a rollback while blue is
// warm takes effect at once, and a rollback to revision 1 after its tag
// moved runs revision 1's image.
func TestDockerCanaryUnderLoad(t *testing.T) {
	eng := testdocker.Shared(t)
	v1, v2 := helloImages(t, eng)
	e := newDockerEnv(t, bin.bluegreen, eng, "hello:latest")
	ctx := context.Background()
	c := &http.Client{Timeout: 5 * time.Second}
	gates := t.TempDir()

	// Revision 1's spec is the one deploy --image takes on: a canary whose
	// test phase waits at a gate, and blue kept warm after the release.
	canary := "hooks:\n  after_allow_test_traffic: [{ run: ./hooks/env.sh }, { run: ./hooks/gate.sh, timeout: 1m }]\n" +
		"strategy:\n  steps:\n    - { weight: 20, pause: {} }\n    - { weight: 100 }\n" +
		"bake: 1s\nretire:\n  keep_blue: 1h\n  drain_timeout: 2s\n"
	openGate(t, gates, "after_allow_test_traffic")
	hooks := map[string]string{"hooks/gate.sh": gateHook(gates),
		"hooks/env.sh": fmt.Sprintf("#!/bin/sh\necho \"$BG_GREEN_CONTAINERS $BG_BLUE_CONTAINERS\" > %q/containers-$BG_REVISION\n", gates)}
	e.deployLiveFiles("v1", e.specFor(canary), hooks)
	if err := os.Remove(filepath.Join(gates, "after_allow_test_traffic")); err != nil {
		t.Fatal(err)
	}
	revs, err := e.api.Revisions(ctx, "shop")
	if err != nil || revs[0].Image == nil || revs[0].Image.ID != v1 || revs[0].Image.Ref != "hello:latest" {
		t.Fatalf("revision 1 pinned %+v (%v); want hello:latest as %s", revs[0].Image, err, v1)
	}
	if got := e.imagesRunning(); fmt.Sprint(got) != fmt.Sprint([]string{v1}) {
		t.Fatalf("containers run %v, want only %s", got, v1)
	}
	l := startLoad(t, "http://"+e.prod+"/", 200)

	// What CI does after docker build and docker push: the tag moves, and
	// deploy --image makes a revision of the live spec with it.
	eng.Tag(t, "hello:2", "hello:latest")
	out := e.mustCLI("deploy", "--image", "hello:latest", "shop", "--message", "v2")
	if !strings.Contains(out, "image hello:latest ("+strings.TrimPrefix(v2, "sha256:")[:12]+")") {
		t.Fatalf("deploy --image said:\n%s\nwant the image pinned to %s", out, v2)
	}
	app, err := e.api.App(ctx, "shop")
	if err != nil || app.Deployment == nil {
		t.Fatalf("no active deployment after deploy --image: %+v, %v", app, err)
	}
	d := *app.Deployment
	e.waitPhase(d.ID, 60*time.Second, "TestTraffic")
	testwait.For(t, 10*time.Second, "the test listener to serve green", func() bool {
		_, code := version(t, c, "http://"+e.test+"/")
		return code == 200
	})
	// Hooks run on the host, and know green's and blue's containers.
	var green, blue []string
	for _, in := range e.instances() {
		if in.Revision == 2 {
			green = append(green, in.Container)
		} else {
			blue = append(blue, in.Container)
		}
	}
	want := strings.Join(green, ",") + " " + strings.Join(blue, ",")
	testwait.For(t, 10*time.Second, "the hook to write the containers it was given", func() bool {
		b, err := os.ReadFile(filepath.Join(gates, "containers-2"))
		return err == nil && strings.TrimSpace(string(b)) == want
	})
	for i := range 20 {
		if v, code := version(t, c, "http://"+e.test+"/"); v != "v2" || code != 200 {
			t.Fatalf("test listener, request %d: %d %q; want v2 only before the shift", i, code, v)
		}
		if v, code := version(t, c, "http://"+e.prod+"/"); v != "v1" || code != 200 {
			t.Fatalf("production, request %d: %d %q; want v1 only before the shift", i, code, v)
		}
	}
	openGate(t, gates, "after_allow_test_traffic")
	testwait.For(t, 60*time.Second, "green at 20%", func() bool {
		d, _ := e.api.Deployment(ctx, d.ID)
		return detailsOf(t, d).Weight == 20
	})
	e.mustCLI("promote", "shop")
	e.waitPhase(d.ID, 60*time.Second, "Retiring")
	if v, _ := version(t, c, "http://"+e.prod+"/"); v != "v2" {
		t.Fatalf("after the release production answers %q, want v2", v)
	}

	// A rollback while blue is warm is a weight flip.
	start := time.Now()
	e.mustCLI("rollback", "shop")
	var flipped time.Duration
	testwait.For(t, 10*time.Second, "production to answer v1 only", func() bool {
		for range 10 {
			if v, _ := version(t, c, "http://"+e.prod+"/"); v != "v1" {
				return false
			}
			if flipped == 0 {
				flipped = time.Since(start)
			}
		}
		return true
	})
	t.Logf("rollback while blue is warm: production answered v1 %v after the command started", flipped.Round(time.Millisecond))
	if d = e.waitEnd(d.ID, 60*time.Second); d.Outcome != "rolled_back" {
		t.Fatalf("after the rollback: %s (%s)", d.Outcome, d.Reason)
	}

	// Revision 2 again, to the end: blue (revision 1) retires.
	d, err = e.api.Deploy(ctx, "shop", 2)
	if err != nil {
		t.Fatal(err)
	}
	e.waitPhase(d.ID, 60*time.Second, "Shifting")
	e.mustCLI("promote", "shop", "--full")
	e.waitPhase(d.ID, 60*time.Second, "Retiring")
	e.mustCLI("promote", "shop")
	if d = e.waitEnd(d.ID, 60*time.Second); d.Outcome != "succeeded" {
		t.Fatalf("revision 2: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	if got := e.imagesRunning(); fmt.Sprint(got) != fmt.Sprint([]string{v2}) {
		t.Fatalf("containers run %v, want only %s", got, v2)
	}

	// hello:latest names v2 now; revision 1 still runs what it pinned.
	out = e.mustCLI("rollback", "shop", "--to", "1", "--wait")
	app, err = e.api.App(ctx, "shop")
	if err != nil || app.Deployment == nil {
		t.Fatalf("no deployment after rollback --to 1: %+v, %v", app, err)
	}
	e.mustCLI("promote", "shop") // blue (revision 2) need not stay warm
	if d = e.waitEnd(app.Deployment.ID, 60*time.Second); d.Outcome != "succeeded" {
		t.Fatalf("rollback --to 1: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	if got := e.imagesRunning(); fmt.Sprint(got) != fmt.Sprint([]string{v1}) {
		t.Fatalf("after rollback --to 1 containers run %v, want only %s (hello:latest is %s)\n%s", got, v1, v2, out)
	}
	if v, _ := version(t, c, "http://"+e.prod+"/"); v != "v1" {
		t.Fatalf("after rollback --to 1 production answers %q, want v1", v)
	}
	insp, err := eng.Client(t).ImageInspect(ctx, "hello:latest")
	if err != nil || insp.ID != v2 {
		t.Fatalf("hello:latest is %s (%v), want it still %s", insp.ID, err, v2)
	}
	e.checkContainers("after rollback --to 1")
	hist := e.mustCLI("history", "shop")
	for _, want := range []string{"IMAGE", "hello:latest (" + strings.TrimPrefix(v1, "sha256:")[:12] + ")", "hello:latest (" + strings.TrimPrefix(v2, "sha256:")[:12] + ")"} {
		if !strings.Contains(hist, want) {
			t.Fatalf("history does not show %q:\n%s", want, hist)
		}
	}

	recs := l.stop()
	if f := failures(recs); len(f) > 0 {
		t.Fatalf("%d of %d requests failed: %s\nbgload: %s", len(f), len(recs), summary(f), l.out.String())
	}
	t.Logf("%s, 0 failed", summary(recs))
}

// uploadErr uploads a revision and returns the API's refusal.
func (e *deployEnv) uploadErr(version, spec string) *api.Error {
	e.t.Helper()
	_, err := e.api.UploadRevision(context.Background(), bytes.NewReader(e.bundle(version, spec, nil)), version)
	var ae *api.Error
	if !errors.As(err, &ae) {
		e.t.Fatalf("uploading %s: %v, want the API to refuse it", version, err)
	}
	return ae
}

// revisionCount is how many revisions the app has.
func (e *deployEnv) revisionCount() int {
	e.t.Helper()
	revs, err := e.api.Revisions(context.Background(), "shop")
	if err != nil {
		e.t.Fatal(err)
	}
	return len(revs)
}

// What goes wrong with images says what and where, and loses nothing: a
// container that exits at start, an image the engine does not have, a
// malformed reference, a registry that refuses the password.
func TestDockerErrorsAreClear(t *testing.T) {
	eng := testdocker.Shared(t)
	v1, _ := helloImages(t, eng)
	e := newDockerEnv(t, bin.bluegreen, eng, "hello:1")
	ctx := context.Background()
	e.deployLive("v1", e.specFor(quick))

	// A container that exits at start: green rolls back with its last words.
	d := e.deploy("v2", e.spec(specParts{run: "  entrypoint: [\"/app\", \"-no-such-flag\"]\n", extra: quick}), nil)
	if d = e.waitEnd(d.ID, 60*time.Second); d.Outcome != "rolled_back" ||
		!strings.Contains(d.Reason, "exited with code") || !strings.Contains(d.Reason, "no-such-flag") {
		t.Fatalf("a container that exits at start: %s (%q), want a rollback naming its exit and its output", d.Outcome, d.Reason)
	}

	// An image the engine does not have (and must not pull, or its
	// registry does not have), a malformed reference: refused at upload,
	// nothing stored. (Tests pull only from registries on loopback.)
	reg := testregistry.Start(t)
	before := e.revisionCount()
	e.image = "no-such-image:1"
	if ae := e.uploadErr("v3", e.spec(specParts{run: "  pull: never\n", extra: quick})); ae.Status != 400 || !strings.Contains(ae.Message, "no-such-image:1") || !strings.Contains(ae.Message, eng.Host) {
		t.Fatalf("an image that is not on the engine: %d %q; want 400 naming the image and the engine", ae.Status, ae.Message)
	}
	e.image = reg.Addr + "/no-such-image:1"
	login := specParts{run: "  auth: { username: " + reg.Username + ", password_param: /shop/REGISTRY_PASSWORD }\n",
		extra: quick + "params: [/shop/REGISTRY_PASSWORD]\n"}
	if _, err := e.api.PutParam(ctx, "/shop/REGISTRY_PASSWORD", reg.Password, true, 0); err != nil {
		t.Fatal(err)
	}
	if ae := e.uploadErr("v3", e.spec(login)); ae.Status != 400 || !strings.Contains(ae.Message, e.image) {
		t.Fatalf("an image its registry does not have: %d %q; want 400 naming the image", ae.Status, ae.Message)
	}
	e.image = "Hello World:1"
	if ae := e.uploadErr("v3", e.specFor(quick)); ae.Status != 400 || !strings.Contains(ae.Message, "docker.image") || !strings.Contains(ae.Message, "bluegreen.yaml:4:") {
		t.Fatalf("a malformed reference: %d %q; want 400 naming docker.image and its line", ae.Status, ae.Message)
	}
	if n := e.revisionCount(); n != before {
		t.Fatalf("%d revisions after two refused uploads, want %d", n, before)
	}

	// A registry that refuses the password: at upload when the image must
	// be pulled, and in the deployment's reason when a launch must pull.
	ref := reg.Addr + "/hello:1"
	eng.Tag(t, "hello:1", ref)
	eng.Push(t, ref, reg.Username, reg.Password)
	if _, err := e.api.PutParam(ctx, "/shop/REGISTRY_PASSWORD", "not-the-password", true, 0); err != nil {
		t.Fatal(err)
	}
	e.image = ref
	login.run = "  pull: always\n" + login.run
	if ae := e.uploadErr("v3", e.spec(login)); ae.Status != 400 || !strings.Contains(ae.Message, reg.Addr) || !strings.Contains(ae.Message, "credentials") {
		t.Fatalf("a refused password at upload: %d %q; want 400 naming the registry and the credentials", ae.Status, ae.Message)
	}
	// With pull: missing the image on the host is pinned without a pull;
	// once it is gone, the launch pulls it by digest, and is refused.
	login.run = "  auth: { username: " + reg.Username + ", password_param: /shop/REGISTRY_PASSWORD }\n"
	rev, err := e.api.UploadRevision(ctx, bytes.NewReader(e.bundle("v3", e.spec(login), nil)), "v3")
	if err != nil {
		t.Fatal(err)
	}
	if rev.Image == nil || rev.Image.ID != v1 || !strings.HasPrefix(rev.Image.Digest, reg.Addr+"/hello@sha256:") {
		t.Fatalf("revision %d pinned %+v; want %s with its registry digest", rev.Generation, rev.Image, v1)
	}
	// Once no container runs v1 (hello:2 goes live) and its tags are
	// removed, the engine no longer has it.
	e.image = "hello:2"
	e.deployLive("v2", e.specFor(quick))
	for _, c := range []string{ref, "hello:1", "hello:latest"} {
		eng.RemoveImage(t, c)
	}
	if _, err := eng.Client(t).ImageInspect(ctx, v1); err == nil {
		t.Fatalf("image %s is still on the engine", v1)
	}
	d, err = e.api.Deploy(ctx, "shop", rev.Generation)
	if err != nil {
		t.Fatal(err)
	}
	if d = e.waitEnd(d.ID, 60*time.Second); d.Outcome != "rolled_back" || !strings.Contains(d.Reason, reg.Addr) || !strings.Contains(d.Reason, "credentials") {
		t.Fatalf("a launch whose pull was refused: %s (%q); want a rollback naming the registry and the credentials", d.Outcome, d.Reason)
	}
	t.Logf("a refused pull at launch: %s: %s", d.Outcome, d.Reason)

	// The right password pulls, and the revision runs what it pinned.
	if _, err := e.api.PutParam(ctx, "/shop/REGISTRY_PASSWORD", reg.Password, true, 0); err != nil {
		t.Fatal(err)
	}
	login.run = "  pull: always\n  auth: { username: " + reg.Username + ", password_param: /shop/REGISTRY_PASSWORD }\n"
	e.image = ref
	e.deployLive("v4", e.spec(login))
	if got := e.imagesRunning(); fmt.Sprint(got) != fmt.Sprint([]string{v1}) {
		t.Fatalf("after a pull with the right password containers run %v, want %s", got, v1)
	}
	// The password is the server's to pull with: the containers never see it.
	for _, id := range e.containerIDs() {
		insp, err := eng.Client(t).ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range insp.Container.Config.Env {
			if strings.HasPrefix(kv, "REGISTRY_PASSWORD=") || strings.Contains(kv, reg.Password) {
				t.Fatalf("container %s has the registry password in its environment: %s", id, kv)
			}
		}
	}
	e.checkContainers("after the errors")
}

// An engine that cannot be reached is named, with where its address came
// from; apps of processes on the same server are not held up by it.
func TestDockerUnreachableEngine(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	e := startDeployEnv(t, bin.bluegreen, func(e *deployEnv) {
		e.env = []string{"DOCKER_HOST=unix://" + sock}
	})
	e.deployLive("v1", e.specFor(quick)) // processes
	e.image = "hello:1"
	ae := e.uploadErr("v2", e.specFor(quick))
	if ae.Status != 503 || !strings.Contains(ae.Message, sock) || !strings.Contains(ae.Message, "DOCKER_HOST") {
		t.Fatalf("an unreachable engine: %d %q; want 503 naming the socket and DOCKER_HOST", ae.Status, ae.Message)
	}
	if n := e.revisionCount(); n != 1 {
		t.Fatalf("%d revisions, want 1", n)
	}
	e.image = ""
	e.deployLive("v3", e.specFor(quick))
}

// The Docker engine restarting in the middle of a deployment: with
// live-restore the containers live on and the deployment goes on; without
// it every container stops, and the deployment still ends, with a reason,
// and the live fleet is whole again afterwards.
func TestDockerEngineRestartMidDeployment(t *testing.T) {
	for _, liveRestore := range []bool{true, false} {
		t.Run(fmt.Sprintf("live-restore=%v", liveRestore), func(t *testing.T) {
			eng := testdocker.New(t, testdocker.Options{LiveRestore: liveRestore})
			helloImages(t, eng)
			e := newDockerEnv(t, bin.bluegreen, eng, "hello:1")
			gates := t.TempDir()
			e.deployLive("v1", e.specFor(quick))
			gated := quick + "hooks:\n  validate_service: [{ run: ./hooks/gate.sh, timeout: 1m }]\n" +
				"strategy:\n  progress_deadline: 20s\n"
			e.image = "hello:2"
			d := e.deploy("v2", e.specFor(gated), map[string]string{"hooks/gate.sh": gateHook(gates)})
			e.waitPhase(d.ID, 60*time.Second, "Validating")
			if err := eng.Restart(); err != nil {
				t.Fatal(err)
			}
			openGate(t, gates, "validate_service")
			d = e.waitEnd(d.ID, 2*time.Minute)
			t.Logf("after the engine restarted: %s (%s)", d.Outcome, d.Reason)
			if liveRestore && d.Outcome != "succeeded" {
				t.Fatalf("with live-restore: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
			}
			if d.Outcome != "succeeded" && d.Reason == "" {
				t.Fatal("the deployment ended without a reason")
			}
			c := &http.Client{Timeout: 5 * time.Second}
			testwait.For(t, 60*time.Second, "the live fleet to serve again", func() bool {
				_, code := version(t, c, "http://"+e.prod+"/")
				return code == 200
			})
			e.checkContainers("after the engine restarted")
		})
	}
}

// The dashboard's history says what each revision runs: its image, pinned.
func TestDashboardShowsImages(t *testing.T) {
	eng := testdocker.Shared(t)
	v1, _ := helloImages(t, eng)
	e := newDockerEnv(t, bin.bluegreen, eng, "hello:1")
	e.deployLive("v1", e.specFor(quick))
	ctx := newBrowser(t, 60*time.Second)
	admin, err := os.ReadFile(filepath.Join(e.data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	login(t, ctx, e.api.Base, strings.TrimSpace(string(admin)))
	run(t, ctx, "opening the app page", chromedp.Navigate(e.api.Base+"/ui/apps/shop"), chromedp.WaitVisible(chromedp.CSS("#history tbody tr")))
	short := strings.TrimPrefix(v1, "sha256:")[:12]
	waitJS(t, ctx, "the history to show revision 1's image",
		fmt.Sprintf(`(() => { const c = document.querySelector('#history tbody tr .image'); return !!c && c.textContent === 'hello:1 %s' && c.title.startsWith(%q); })()`, short, v1))
}
