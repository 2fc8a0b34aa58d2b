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

// An app that exits as it starts is listed as exited with its code, and
// its last lines can be read: what the engine says when green dies.
func TestExitAtStart(t *testing.T) {
	c := testk8s.Shared(t)
	p := newPlatform(t, c, newNamespace(t, c), newOwner("exit"))
	s := appSpec(t, c, "crash-0", map[string]string{"TESTAPP_LINES": "3", "TESTAPP_EXIT_AFTER_MS": "0", "TESTAPP_EXIT_CODE": "3"})
	in, err := p.Launch(testCtx(t), s)
	if err != nil {
		t.Fatalf("Launch of an app that exits at once: %v (it started: the exit is for List to tell)", err)
	}
	if in.State == platform.StateExited && in.ExitCode != 3 {
		t.Errorf("Launch returned %+v, want running or exited with code 3", in)
	}
	dead := waitExited(t, p, "crash-0", 3)
	if !strings.Contains(dead.Detail, "exited with code 3") {
		t.Errorf("Detail %q does not say how it ended", dead.Detail)
	}
	// stdout's last lines; the line on stderr may come among them.
	got := readLogs(t, p, "crash-0", 3)
	if !strings.Contains(got, "start line 3\n") || !strings.Contains(got, "exiting with code 3\n") {
		t.Errorf("last three lines: %q", got)
	}
}

// A pinned image the node does not have fails Launch at once, naming the
// pod and the kubelet's reason, as an image error; no pod is left.
func TestLaunchOfAMissingImage(t *testing.T) {
	c := testk8s.Shared(t)
	ns := newNamespace(t, c)
	p := newPlatform(t, c, ns, newOwner("missing"))
	s := appSpec(t, c, "ghost-0", nil)
	s.Container.Image = platform.Image{Ref: "bluegreen.test/ghost:1", ID: "sha256:" + strings.Repeat("0", 64)}
	_, err := p.Launch(testCtx(t), s)
	if !errors.Is(err, platform.ErrImage) || !strings.Contains(err.Error(), "ErrImageNeverPull") || !strings.Contains(err.Error(), "ghost-0") {
		t.Fatalf("Launch of a missing image: %v, want an image error naming the instance and ErrImageNeverPull", err)
	}
	if _, ok := find(t, p, "ghost-0"); ok {
		t.Errorf("the pod that could not start is still there")
	}
}

// A pod no node can take fails Launch once the start timeout has passed,
// with the scheduler's reason; no pod is left.
func TestLaunchUnschedulable(t *testing.T) {
	c := testk8s.Shared(t)
	ns := newNamespace(t, c)
	p, err := New(Options{Config: c.RESTConfig(t), Namespace: ns, Owner: newOwner("big"), StartTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := appSpec(t, c, "huge-0", nil)
	s.Container.MemoryBytes = 1 << 50
	_, err = p.Launch(testCtx(t), s)
	if err == nil || !strings.Contains(err.Error(), "Unschedulable") || !strings.Contains(err.Error(), "did not start within 3s") {
		t.Fatalf("Launch of a pod too big for any node: %v, want the scheduler's reason", err)
	}
	if _, ok := find(t, p, "huge-0"); ok {
		t.Errorf("the unschedulable pod is still there")
	}
}

// The kubelet expands $(NAME) in a pod's env and arguments: what bluegreen
// expanded already reaches the app as it is.
func TestDollarsReachTheApp(t *testing.T) {
	c := testk8s.Shared(t)
	p := newPlatform(t, c, newNamespace(t, c), newOwner("dollar"))
	s := appSpec(t, c, "dollar-0", map[string]string{"A": "$(BG_INSTANCE) and $$(X) cost $$5"})
	s.Command = []string{"--x=$(PORT)"}
	in := launch(t, p, s)
	v := platformtest.WaitServing(t, in)
	if got, want := v.Env["A"], "$(BG_INSTANCE) and $(X) cost $5"; got != want {
		t.Errorf("A = %q, want %q", got, want)
	}
	if len(v.Args) != 1 || v.Args[0] != "--x=$(PORT)" {
		t.Errorf("args = %q, want [--x=$(PORT)]", v.Args)
	}
}

// Resolve pins an image imported into the node by its ID, without running
// any of it; an image the node lacks, when it may not pull, is an image
// error naming it.
func TestResolve(t *testing.T) {
	c := testk8s.Shared(t)
	ns := newNamespace(t, c)
	p := newPlatform(t, c, ns, newOwner("resolve"))
	want := appImage(t, c)
	img, err := p.Resolve(testCtx(t), want.Ref, platform.PullNever, nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != want.ID || img.Ref != want.Ref {
		t.Errorf("Resolve = %+v, want %+v", img, want)
	}
	_, err = p.Resolve(testCtx(t), "bluegreen.test/nowhere:1", platform.PullNever, nil)
	if !errors.Is(err, platform.ErrImage) || !strings.Contains(err.Error(), "bluegreen.test/nowhere:1") || !strings.Contains(err.Error(), "ErrImageNeverPull") {
		t.Errorf("Resolve of a missing image: %v", err)
	}
	if _, err := p.Resolve(testCtx(t), "Not A Reference", platform.PullNever, nil); !errors.Is(err, platform.ErrImage) {
		t.Errorf("Resolve of a malformed reference: %v", err)
	}
	pods, err := c.Client(t).CoreV1().Pods(ns).List(testCtx(t), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 0 {
		t.Errorf("Resolve left %d pods behind", len(pods.Items))
	}
}

// A spec's pod settings reach the pod: requests and limits, the service
// account with its token, node selector, tolerations, labels and
// annotations beside bluegreen's own; and the pod runs.
func TestPodSettings(t *testing.T) {
	c := testk8s.Shared(t)
	ns := newNamespace(t, c)
	p := newPlatform(t, c, ns, newOwner("settings"))
	s := appSpec(t, c, "set-0", nil)
	s.Container.Pod = &platform.PodSettings{
		Requests:       map[string]string{"cpu": "10m", "memory": "16Mi"},
		Limits:         map[string]string{"memory": "64Mi"},
		ServiceAccount: "default",
		NodeSelector:   map[string]string{"kubernetes.io/os": "linux"},
		Tolerations:    []platform.Toleration{{Key: "dedicated", Value: "shop", Effect: "NoExecute", Seconds: 30}},
		Labels:         map[string]string{"team": "shop"},
		Annotations:    map[string]string{"example.com/owner": "shop-team"},
	}
	in := launch(t, p, s)
	platformtest.WaitServing(t, in)
	pod, err := c.Client(t).CoreV1().Pods(ns).Get(testCtx(t), p.podName("set-0"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ct := pod.Spec.Containers[0]
	if q := ct.Resources.Requests.Cpu().String(); q != "10m" {
		t.Errorf("cpu request %s, want 10m", q)
	}
	if q := ct.Resources.Requests.Memory().String(); q != "16Mi" {
		t.Errorf("memory request %s, want 16Mi", q)
	}
	if q := ct.Resources.Limits.Memory().String(); q != "64Mi" {
		t.Errorf("memory limit %s, want 64Mi", q)
	}
	if pod.Spec.ServiceAccountName != "default" || pod.Spec.AutomountServiceAccountToken == nil || !*pod.Spec.AutomountServiceAccountToken {
		t.Errorf("service account %q, automount %v; want default with its token", pod.Spec.ServiceAccountName, pod.Spec.AutomountServiceAccountToken)
	}
	if pod.Spec.NodeSelector["kubernetes.io/os"] != "linux" {
		t.Errorf("node selector %v", pod.Spec.NodeSelector)
	}
	found := false
	for _, tol := range pod.Spec.Tolerations {
		found = found || (tol.Key == "dedicated" && tol.Value == "shop" && tol.Operator == "Equal" && tol.Effect == "NoExecute" &&
			tol.TolerationSeconds != nil && *tol.TolerationSeconds == 30)
	}
	if !found {
		t.Errorf("tolerations %+v lack dedicated=shop:NoExecute for 30s", pod.Spec.Tolerations)
	}
	if pod.Labels["team"] != "shop" || pod.Labels[labelInstance] != "set-0" {
		t.Errorf("labels %v, want team=shop beside bluegreen's", pod.Labels)
	}
	if pod.Annotations["example.com/owner"] != "shop-team" || pod.Annotations[annoInstance] != "set-0" {
		t.Errorf("annotations %v, want example.com/owner beside bluegreen's", pod.Annotations)
	}
}
