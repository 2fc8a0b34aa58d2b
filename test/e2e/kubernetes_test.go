package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bluegreen/internal/testdocker"
	"bluegreen/internal/testk8s"
	"bluegreen/internal/testwait"
)

// helloPodImages imports the example app into the cluster's node as
// bluegreen.test/hello:1 and :2, answering X-Version v1 and v2, and
// returns their image IDs.
func helloPodImages(t *testing.T, c *testk8s.Cluster) (v1, v2 string) {
	t.Helper()
	prog := testdocker.GoBinary(t, "bluegreen/examples/hello")
	v1 = c.ImportImage(t, prog, "bluegreen.test/hello:1", map[string]string{"/VERSION": "v1\n"})
	v2 = c.ImportImage(t, prog, "bluegreen.test/hello:2", map[string]string{"/VERSION": "v2\n"})
	if v1 == v2 {
		t.Fatal("hello:1 and hello:2 are the same image")
	}
	return v1, v2
}

// podImages lists the image IDs the running pods of app shop were
// launched with, sorted.
func podImages(t *testing.T, c *testk8s.Cluster, ns string) []string {
	t.Helper()
	pods, err := c.Client(t).CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "bluegreen.io/app=shop"})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			out = append(out, p.Annotations["bluegreen.io/image-id"])
		}
	}
	slices.Sort(out)
	return out
}

// An app of pods on a real cluster goes from image v1 to v2 through a
// canary under steady load, with bluegreen's router carrying the traffic to
// the pods: no request fails, a rollback while blue is warm is a weight
// flip, and once blue retires only v2's pods run.
func TestKubernetesCanaryUnderLoad(t *testing.T) {
	e := newKubeEnv(t, bin.bluegreen)
	c, ns := e.kube, e.kubeNS
	v1, v2 := helloPodImages(t, c)
	ctx := context.Background()
	hc := &http.Client{Timeout: 5 * time.Second}

	// Revision 1's spec is the one deploy --image takes on: a canary, and
	// blue kept warm after the release.
	canary := "strategy:\n  steps:\n    - { weight: 20, pause: 1s }\n    - { weight: 100 }\n" +
		"bake: 1s\nretire:\n  keep_blue: 1h\n  drain_timeout: 2s\n"
	e.deployLive("v1", e.specFor(canary))
	revs, err := e.api.Revisions(ctx, "shop")
	if err != nil || revs[0].Image == nil || revs[0].Image.ID != v1 {
		t.Fatalf("revision 1 pinned %+v (%v); want bluegreen.test/hello:1 as %s", revs[0].Image, err, v1)
	}
	if got := podImages(t, c, ns); fmt.Sprint(got) != fmt.Sprint([]string{v1, v1}) {
		t.Fatalf("pods run %v, want two of %s", got, v1)
	}
	for _, in := range e.instances() {
		if !strings.HasPrefix(in.Address, testk8s.NodeIP+":") {
			t.Fatalf("instance %s is at %s, want the node's %s", in.ID, in.Address, testk8s.NodeIP)
		}
	}
	l := startLoad(t, "http://"+e.prod+"/", 200)

	// What CI does once it has imported a new image into the nodes.
	out := e.mustCLI("deploy", "--image", "bluegreen.test/hello:2", "shop", "--message", "v2")
	if !strings.Contains(out, "("+strings.TrimPrefix(v2, "sha256:")[:12]+")") {
		t.Fatalf("deploy --image said:\n%s\nwant the image pinned to %s", out, v2)
	}
	app, err := e.api.App(ctx, "shop")
	if err != nil || app.Deployment == nil {
		t.Fatalf("no active deployment after deploy --image: %+v, %v", app, err)
	}
	d := *app.Deployment
	e.waitPhase(d.ID, 2*time.Minute, "Retiring")
	if v, _ := version(t, hc, "http://"+e.prod+"/"); v != "v2" {
		t.Fatalf("after the release production answers %q, want v2", v)
	}

	// A rollback while blue is warm is a weight flip.
	start := time.Now()
	e.mustCLI("rollback", "shop")
	var flipped time.Duration
	testwait.For(t, 10*time.Second, "production to answer v1 only", func() bool {
		for range 10 {
			if v, _ := version(t, hc, "http://"+e.prod+"/"); v != "v1" {
				return false
			}
			if flipped == 0 {
				flipped = time.Since(start)
			}
		}
		return true
	})
	t.Logf("rollback while blue is warm: production answered v1 %v after the command started", flipped.Round(time.Millisecond))
	if d = e.waitEnd(d.ID, time.Minute); d.Outcome != "rolled_back" {
		t.Fatalf("after the rollback: %s (%s)", d.Outcome, d.Reason)
	}

	// Revision 2 again, to the end: blue (revision 1) retires.
	d, err = e.api.Deploy(ctx, "shop", 2)
	if err != nil {
		t.Fatal(err)
	}
	e.waitPhase(d.ID, 2*time.Minute, "Retiring")
	e.mustCLI("promote", "shop") // blue need not stay warm
	if d = e.waitEnd(d.ID, time.Minute); d.Outcome != "succeeded" {
		t.Fatalf("revision 2: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	testwait.For(t, 30*time.Second, "only v2's pods to run", func() bool {
		return fmt.Sprint(podImages(t, c, ns)) == fmt.Sprint([]string{v2, v2})
	})
	if v, _ := version(t, hc, "http://"+e.prod+"/"); v != "v2" {
		t.Fatalf("production answers %q, want v2", v)
	}

	recs := l.stop()
	if f := failures(recs); len(f) > 0 {
		t.Fatalf("%d of %d requests failed: %s\nbgload: %s", len(f), len(recs), summary(f), l.out.String())
	}
	t.Logf("%s, 0 failed", summary(recs))
}

// newKubeEnv is a server whose apps run as pods of a cluster of the test's
// own (named by KUBECONFIG, as a user's shell would), in a namespace of
// their own, with specs naming bluegreen.test/hello:1.
func newKubeEnv(t *testing.T, binary string) *deployEnv {
	t.Helper()
	// A cluster of the test's own: the machine has one at a time, and
	// other test binaries may wait for it.
	c := testk8s.New(t)
	ns, kubeconfig := c.Namespace(t)
	return startDeployEnv(t, binary, func(e *deployEnv) {
		e.kube, e.kubeNS, e.kubeImage = c, ns, "bluegreen.test/hello:1"
		e.env = []string{"KUBECONFIG=" + kubeconfig}
	})
}

// runningPods lists the running pods of app shop (none being deleted).
func (e *deployEnv) runningPods() []corev1.Pod {
	e.t.Helper()
	pods, err := e.kube.Client(e.t).CoreV1().Pods(e.kubeNS).List(context.Background(), metav1.ListOptions{
		LabelSelector: "bluegreen.io/app=shop,bluegreen.io/role=instance",
	})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// podUIDs lists the UIDs of the app's running pods, sorted.
func (e *deployEnv) podUIDs() []string {
	var out []string
	for _, p := range e.runningPods() {
		out = append(out, string(p.UID))
	}
	slices.Sort(out)
	return out
}

// checkPods checks that the cluster runs exactly the listed running
// instances, each once.
func (e *deployEnv) checkPods(when string) {
	e.t.Helper()
	testwait.For(e.t, 30*time.Second, when+": the pods to match the instances", func() bool {
		var want, got []string
		for _, in := range e.instances() {
			if in.State == "running" {
				want = append(want, in.ID)
			}
		}
		for _, p := range e.runningPods() {
			got = append(got, p.Annotations["bluegreen.io/instance"])
		}
		slices.Sort(want)
		slices.Sort(got)
		return fmt.Sprint(got) == fmt.Sprint(want)
	})
}

// killPod kills the app's process in the pod of uid, as a crash would:
// the pod stays, its container exited.
func (e *deployEnv) killPod(uid string) {
	e.t.Helper()
	var id string
	for _, p := range e.runningPods() {
		if string(p.UID) == uid && len(p.Status.ContainerStatuses) == 1 {
			_, id, _ = strings.Cut(p.Status.ContainerStatuses[0].ContainerID, "://")
		}
	}
	if id == "" {
		e.t.Fatalf("no running pod %s", uid)
	}
	pids := processes(e.t, func(dir string) bool {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup"))
		return strings.Contains(string(b), id)
	})
	if len(pids) == 0 {
		e.t.Fatalf("no process of container %s", id)
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// A pod of green killed while green has half the traffic rolls the
// deployment back with the instance's exit (green, of a revision with more
// pods and a CPU request, has them; blue's pods are untouched); the same revision deployed
// again goes live; rollback --to 1 after blue retired brings revision 1's
// pods back. After each, the cluster holds exactly the pods the store
// lists, and under load only the requests in flight to the killed pod may
// fail.
func TestKubernetesGreenPodKilledAndRollbackTo(t *testing.T) {
	e := newKubeEnv(t, bin.bluegreen)
	c, ns := e.kube, e.kubeNS
	v1, v2 := helloPodImages(t, c)
	ctx := context.Background()
	e.deployLive("v1", e.specFor(quick))
	l := startLoad(t, "http://"+e.prod+"/", 100)

	e.kubeImage = "bluegreen.test/hello:2"
	half := quick + "strategy:\n  steps:\n    - { weight: 50, pause: {} }\n    - { weight: 100 }\n"
	// Revision 2 asks for more pods, each with a CPU request: green's
	// alone, blue's stay as they are.
	v2spec := strings.Replace(e.specFor(half), "  instances: 2\n", "  instances: 3\n  resources: { requests: { cpu: 10m } }\n", 1)
	d := e.deploy("v2", v2spec, nil)
	testwait.For(t, time.Minute, "green at 50%", func() bool {
		d, _ := e.api.Deployment(ctx, d.ID)
		return d.Outcome == "" && detailsOf(t, d).Weight == 50
	})
	var victim corev1.Pod
	count := map[string]int{}
	for _, p := range e.runningPods() {
		rev := p.Labels["bluegreen.io/revision"]
		count[rev]++
		cpu := p.Spec.Containers[0].Resources.Requests.Cpu().String()
		if (rev == "2") != (cpu == "10m") {
			t.Errorf("pod %s of revision %s requests cpu %s", p.Name, rev, cpu)
		}
		if rev == "2" {
			victim = p
		}
	}
	if count["1"] != 2 || count["2"] != 3 {
		t.Fatalf("at 50%% the pods by revision are %v; want blue's 2 and green's 3", count)
	}
	if victim.Name == "" {
		t.Fatal("no pod of green runs")
	}
	killedAt := time.Now()
	e.killPod(string(victim.UID))
	d = e.waitEnd(d.ID, time.Minute)
	rolledBackAt := time.Now()
	id := victim.Annotations["bluegreen.io/instance"]
	// The reason names the pod and its exit, once the kubelet has reported
	// it; a kubelet slower than the engine's wait leaves the router's own
	// account: the killed pod's address failing its health check.
	addr := fmt.Sprintf("green target %s:%d failed its health check", testk8s.NodeIP, victim.Spec.Containers[0].Ports[0].HostPort)
	named := strings.Contains(d.Reason, id) && strings.Contains(d.Reason, "exited")
	if d.Outcome != "rolled_back" || !(named || strings.Contains(d.Reason, addr)) {
		t.Fatalf("after a pod of green was killed: %s (%s); want rolled_back naming %s and its exit, or %q\n%s", d.Outcome, d.Reason, id, addr, e.eventLog(d.ID))
	}
	t.Logf("green pod killed: %s", d.Reason)
	e.checkAllPods("after green's pod was killed")

	// Revision 2 again, to the end: blue (revision 1) retires.
	d, err := e.api.Deploy(ctx, "shop", 2)
	if err != nil {
		t.Fatal(err)
	}
	e.waitPhase(d.ID, time.Minute, "Shifting")
	testwait.For(t, time.Minute, "green at 50%", func() bool {
		d, _ := e.api.Deployment(ctx, d.ID)
		return detailsOf(t, d).Weight == 50
	})
	e.mustCLI("promote", "shop")
	if d = e.waitEnd(d.ID, time.Minute); d.Outcome != "succeeded" {
		t.Fatalf("revision 2: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	e.checkAllPods("after revision 2 went live")
	if got := podImages(t, c, ns); fmt.Sprint(got) != fmt.Sprint([]string{v2, v2, v2}) {
		t.Fatalf("pods run %v, want three of %s", got, v2)
	}

	// Revision 1's pods are gone; rollback --to 1 makes them again.
	e.mustCLI("rollback", "shop", "--to", "1", "--wait")
	app, err := e.api.App(ctx, "shop")
	if err != nil || app.LiveRevision != 1 {
		t.Fatalf("after rollback --to 1: %+v, %v; want revision 1 live", app, err)
	}
	if app.Deployment != nil {
		// --wait returns once revision 1 is live; blue retires after.
		if d = e.waitEnd(app.Deployment.ID, time.Minute); d.Outcome != "succeeded" {
			t.Fatalf("rollback --to 1: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
		}
	}
	e.checkAllPods("after rollback --to 1")
	if got := podImages(t, c, ns); fmt.Sprint(got) != fmt.Sprint([]string{v1, v1}) {
		t.Fatalf("after rollback --to 1 pods run %v, want two of %s", got, v1)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	if v, _ := version(t, hc, "http://"+e.prod+"/"); v != "v1" {
		t.Fatalf("after rollback --to 1 production answers %q, want v1", v)
	}

	recs := l.stop()
	var blamed []loadRecord
	for _, r := range failures(recs) {
		if r.status == 502 && !r.start.Before(killedAt.Add(-time.Second)) && r.start.Before(rolledBackAt) {
			continue // in flight to the pod as it died
		}
		blamed = append(blamed, r)
	}
	if len(blamed) > 0 {
		t.Fatalf("%d of %d requests failed beyond those in flight to the killed pod: %s", len(blamed), len(recs), summary(blamed))
	}
	t.Logf("%s; failed: %s", summary(recs), summary(failures(recs)))
}

// checkAllPods checks that the cluster holds exactly the pods of the
// store's instances of app shop, running or not, each once, and the app's
// owner ConfigMap.
func (e *deployEnv) checkAllPods(when string) {
	e.t.Helper()
	cs := e.kube.Client(e.t)
	testwait.For(e.t, 30*time.Second, when+": the pods to be the store's instances", func() bool {
		var want, got []string
		for _, in := range e.instances() {
			want = append(want, in.ID+" "+in.State)
		}
		pods, err := cs.CoreV1().Pods(e.kubeNS).List(context.Background(), metav1.ListOptions{LabelSelector: "bluegreen.io/app=shop,bluegreen.io/role=instance"})
		if err != nil {
			return false
		}
		for _, p := range pods.Items {
			state := "exited"
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				state = "running"
			}
			got = append(got, p.Annotations["bluegreen.io/instance"]+" "+state)
		}
		slices.Sort(want)
		slices.Sort(got)
		return fmt.Sprint(got) == fmt.Sprint(want)
	})
	cms, err := cs.CoreV1().ConfigMaps(e.kubeNS).List(context.Background(), metav1.ListOptions{LabelSelector: "bluegreen.io/app=shop"})
	if err != nil || len(cms.Items) != 1 {
		e.t.Fatalf("%s: the app's owner ConfigMaps: %v (%v); want one", when, cms, err)
	}
}
