package kubernetes

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/platformtest"
	"bluegreen/internal/testk8s"
)

// Two servers in one namespace may launch the same instance ID; each sees,
// stops and reads only its own pod.
func TestTwoOwnersInOneNamespace(t *testing.T) {
	c := testk8s.Shared(t)
	ns := newNamespace(t, c)
	a := newPlatform(t, c, ns, newOwner("server-a"))
	b := newPlatform(t, c, ns, newOwner("server-b"))
	if v, err := a.Describe(testCtx(t)); err != nil || !strings.HasPrefix(v, "v1.") {
		t.Errorf("Describe = %q, %v; want the cluster's version", v, err)
	}
	ina := launch(t, a, appSpec(t, c, "same-0", nil))
	inb := launch(t, b, appSpec(t, c, "same-0", nil))
	if ina.Address == inb.Address || ina.Container == inb.Container {
		t.Fatalf("two owners' instances share an address or a container: %+v, %+v", ina, inb)
	}
	launch(t, b, appSpec(t, c, "only-b-0", nil))
	platformtest.WaitServing(t, ina)
	platformtest.WaitServing(t, inb)

	if ins, _ := a.List(testCtx(t), ""); len(ins) != 1 || ins[0].Container != ina.Container {
		t.Errorf("owner a lists %+v, want only its own same-0", ins)
	}
	if err := a.Stop(testCtx(t), "only-b-0", 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := find(t, b, "only-b-0"); !ok {
		t.Errorf("owner a's Stop of b's instance removed it")
	}
	if _, err := a.Logs(testCtx(t), "only-b-0", platform.LogOptions{}); !errors.Is(err, platform.ErrNotFound) {
		t.Errorf("owner a reads b's logs: %v", err)
	}
	if err := b.Stop(testCtx(t), "same-0", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got, ok := find(t, a, "same-0"); !ok || got.State != platform.StateRunning {
		t.Errorf("owner b's Stop touched a's same-0: %+v (listed %v)", got, ok)
	}
	if _, err := platformtest.Get(ina.Address, "/healthz"); err != nil {
		t.Errorf("a's instance stopped answering: %v", err)
	}
}

// A new Platform value of the same owner (a restarted server) knows what
// the last one left, from the cluster alone: a pod that died meanwhile is
// listed as exited with its code and its output, and Launch replaces it;
// one that runs is adopted with its address and its labels.
func TestAdoptionAfterARestart(t *testing.T) {
	c := testk8s.Shared(t)
	ns := newNamespace(t, c)
	owner := newOwner("adopt")
	first := open(t, c, ns, owner)
	dies := appSpec(t, c, "dies-0", map[string]string{"TESTAPP_EXIT_AFTER_MS": "1500", "TESTAPP_EXIT_CODE": "9"})
	launch(t, first, dies)
	lives := appSpec(t, c, "lives-0", nil)
	lives.Fleet, lives.Index, lives.Revision = "green", 0, 4
	running := launch(t, first, lives)
	platformtest.WaitServing(t, running)
	// The server goes away: nothing of the first value is used again.

	p := newPlatform(t, c, ns, owner)
	if dead := waitExited(t, p, "dies-0", 9); dead.App != "kube" || dead.Fleet != "blue" || dead.Revision != 1 {
		t.Errorf("the dead instance is listed as %+v, want kube's revision 1, blue", dead)
	}
	if got := readLogs(t, p, "dies-0", 1); got != "exiting with code 9\n" {
		t.Errorf("last line of the dead pod: %q", got)
	}
	got, ok := find(t, p, "lives-0")
	if !ok || got.State != platform.StateRunning || got.Address != running.Address || !got.StartedAt.Equal(running.StartedAt) ||
		got.Fleet != "green" || got.Revision != 4 || got.App != "kube" {
		t.Errorf("the running instance is listed as %+v (found %v), want %+v", got, ok, running)
	}
	dies.Env["TESTAPP_EXIT_AFTER_MS"] = "600000"
	in := launch(t, p, dies)
	if in.State != platform.StateRunning {
		t.Fatalf("Launch of the dead instance: %+v", in)
	}
	platformtest.WaitServing(t, in)
}

// The pods of an app are owned by one object of the app: deleting it has
// the cluster delete them all.
func TestDeleteAppDeletesItsPods(t *testing.T) {
	c := testk8s.Shared(t)
	ns := newNamespace(t, c)
	p := newPlatform(t, c, ns, newOwner("gc"))
	var ins []platform.Instance
	for _, id := range []string{"kube-1-blue-0", "kube-1-blue-1"} {
		ins = append(ins, launch(t, p, appSpec(t, c, id, nil)))
	}
	other := appSpec(t, c, "other-1-blue-0", nil)
	other.App = "other"
	launch(t, p, other)

	pods, err := c.Client(t).CoreV1().Pods(ns).List(testCtx(t), metav1.ListOptions{LabelSelector: labelApp + "=kube"})
	if err != nil {
		t.Fatal(err)
	}
	for _, pod := range pods.Items {
		if len(pod.OwnerReferences) != 1 || pod.OwnerReferences[0].Kind != "ConfigMap" || !strings.HasSuffix(pod.OwnerReferences[0].Name, "-kube") {
			t.Errorf("pod %s is owned by %+v, want the app's configmap", pod.Name, pod.OwnerReferences)
		}
		for _, l := range []string{labelOwner, labelApp, labelRevision, labelFleet, labelIndex, labelInstance, labelPort} {
			if pod.Labels[l] == "" {
				t.Errorf("pod %s lacks label %s: %v", pod.Name, l, pod.Labels)
			}
		}
	}
	if err := p.DeleteApp(testCtx(t), "kube"); err != nil {
		t.Fatal(err)
	}
	for _, in := range ins {
		if _, err := platformtest.Get(in.Address, "/healthz"); err == nil {
			t.Errorf("after DeleteApp, %s still answers at %s", in.ID, in.Address)
		}
	}
	if got, ok := find(t, p, "other-1-blue-0"); !ok || got.State != platform.StateRunning {
		t.Errorf("another app's pod went too: %+v (listed %v)", got, ok)
	}
}
