package kubernetes

import (
	"errors"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/platformtest"
	"bluegreen/internal/testk8s"
)

// The production Service is never pointed at a fleet with fewer ready pods
// than asked (here: a pod whose readiness probe fails), and is not even
// made; a Service pinned to a role follows its fleet as it is. On the test
// cluster a ready fleet's pods are at 127.0.0.1, which no EndpointSlice may
// hold: the switch fails at once as refused, in the cluster's words.
func TestSwitchServices(t *testing.T) {
	c := testk8s.Shared(t)
	ns := newNamespace(t, c)
	p := newPlatform(t, c, ns, newOwner("svc"))
	cs := c.Client(t).CoreV1().Services(ns)

	s := appSpec(t, c, "kube-1-blue-0", nil)
	s.Container.Pod = &platform.PodSettings{Readiness: &platform.Probe{Path: "/file", Interval: time.Second, Timeout: time.Second}}
	launch(t, p, s)
	err := p.SwitchServices(testCtx(t), "kube", platform.ServiceSelection{Production: "blue", Blue: "blue", Want: map[string]int{"blue": 1}})
	if err == nil || !strings.Contains(err.Error(), "fleet blue has 0 of 1 pods ready; not switching") {
		t.Fatalf("switching to a fleet that is not ready: %v", err)
	}
	if _, err := cs.Get(testCtx(t), "kube", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("service kube was made (%v); want none before a fleet is ready", err)
	}
	if err := p.SwitchServices(testCtx(t), "kube", platform.ServiceSelection{Blue: "blue", Want: map[string]int{"blue": 1}}); err != nil {
		t.Fatalf("pinning kube-blue: %v", err)
	}
	for name, fleet := range map[string]string{"kube": "none", "kube-test": "none", "kube-blue": "blue", "kube-green": "none"} {
		svc, err := cs.Get(testCtx(t), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := svc.Spec.Selector[labelFleet]; got != fleet || svc.Spec.Selector[labelApp] != "kube" || len(svc.OwnerReferences) != 1 {
			t.Errorf("service %s selects %v (owners %v); want fleet %s of app kube, owned by the app", name, svc.Spec.Selector, svc.OwnerReferences, fleet)
		}
	}

	ready := appSpec(t, c, "kube-2-green-0", nil)
	ready.Fleet = "green"
	ready.Container.Pod = &platform.PodSettings{Readiness: &platform.Probe{Path: "/healthz", Interval: time.Second, Timeout: time.Second}}
	launch(t, p, ready)
	platformtest.Eventually(t, 30*time.Second, func() string {
		pods, err := p.readyPods(testCtx(t), "kube", "green")
		if err != nil || len(pods) != 1 {
			return "green's pod to be ready"
		}
		return ""
	})
	err = p.SwitchServices(testCtx(t), "kube", platform.ServiceSelection{Production: "green", Green: "green", Want: map[string]int{"green": 1}, Timeout: time.Minute})
	if !errors.Is(err, platform.ErrRefused) || !strings.Contains(err.Error(), "loopback") || !strings.Contains(err.Error(), ns+"/kube") {
		t.Fatalf("switching to pods at 127.0.0.1: %v; want the cluster's refusal of loopback endpoints, naming the service", err)
	}
	t.Logf("the refusal: %v", err)
}
