package kubernetes

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/platformtest"
	"bluegreen/internal/testk8s"
)

// The production Service is never pointed at a fleet with fewer ready pods
// than asked (here: a pod whose readiness probe fails), and is not even
// made; a Service pinned to a role follows its fleet as it is. Pointed at a
// ready fleet, the switch returns once the Service's EndpointSlices hold
// that fleet's pods, at their address.
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
	if err != nil {
		t.Fatalf("switching to a ready fleet: %v", err)
	}
	all, readyEPs, err := p.Endpoints(testCtx(t), "kube")
	want := []string{p.podName("kube-2-green-0")}
	if err != nil || !slices.Equal(all, want) || !slices.Equal(readyEPs, want) {
		t.Fatalf("after the switch service kube's endpoints are %v (ready %v, %v); want %v", all, readyEPs, err, want)
	}
	green, _ := find(t, p, "kube-2-green-0")
	slices_, err := c.Client(t).DiscoveryV1().EndpointSlices(ns).List(testCtx(t), metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=kube"})
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, sl := range slices_.Items {
		for _, ep := range sl.Endpoints {
			for _, port := range sl.Ports {
				addrs = append(addrs, ep.Addresses[0]+":"+strconv.Itoa(int(*port.Port)))
			}
		}
	}
	if len(addrs) != 1 || addrs[0] != green.Address {
		t.Fatalf("service kube's EndpointSlices hold %v; want green's pod at %s", addrs, green.Address)
	}
}

// A Service whose endpoints the cluster cannot record fails the switch at
// once, as refused, in the endpoint controller's words. The cluster refuses
// a loopback address in an EndpointSlice; a pod's IP is its node's, so the
// test makes a node no kubelet runs (unschedulable: nothing else goes
// there) and a pod on it whose status says it is ready at 127.0.0.1.
func TestSwitchServicesRefused(t *testing.T) {
	c := testk8s.Shared(t)
	ns := newNamespace(t, c)
	p := newPlatform(t, c, ns, newOwner("svc"))
	cs := c.Client(t)
	ctx := testCtx(t)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "ghost-" + ns}, Spec: corev1.NodeSpec{Unschedulable: true}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.CoreV1().Nodes().Delete(context.Background(), node.Name, metav1.DeleteOptions{}) })
	owner, err := p.appOwner(ctx, "kube")
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "ghost", Namespace: ns, OwnerReferences: []metav1.OwnerReference{owner},
			Labels: map[string]string{labelOwner: p.ownerLabel(), labelRole: "instance", labelApp: "kube", labelFleet: "green"},
		},
		Spec: corev1.PodSpec{
			NodeName: node.Name, HostNetwork: true,
			Containers: []corev1.Container{{Name: containerName, Image: "bluegreen.test/none:1", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}},
		},
	}
	pods := cs.CoreV1().Pods(ns)
	if pod, err = pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// No kubelet will confirm a graceful deletion.
	t.Cleanup(func() {
		pods.Delete(context.Background(), "ghost", metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))})
	})
	pod.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: "127.0.0.1", PodIPs: []corev1.PodIP{{IP: "127.0.0.1"}}, HostIP: "127.0.0.1",
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
	}
	if _, err := pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = p.SwitchServices(ctx, "kube", platform.ServiceSelection{Production: "green", Green: "green", Want: map[string]int{"green": 1}, Timeout: time.Minute})
	if !errors.Is(err, platform.ErrRefused) || !strings.Contains(err.Error(), "loopback") || !strings.Contains(err.Error(), ns+"/kube") {
		t.Fatalf("switching to a pod at 127.0.0.1: %v; want the cluster's refusal of loopback endpoints, naming the service", err)
	}
	t.Logf("the refusal: %v", err)
}
