package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// With kubernetes.traffic: service, a switch counts only once the
// Service's EndpointSlices hold exactly the fleet's ready pods. This
// project's test cluster has no pod network: its pods share the node's
// address, 127.0.0.1, which the cluster refuses in an EndpointSlice. So
// here no switch can be verified, and the test checks that none is
// counted: the deployment rolls back naming the Service and the cluster's
// words, and the Services select nothing. Weighted steps are refused with
// the spec.
func TestKubernetesServiceTraffic(t *testing.T) {
	e := newKubeEnv(t, bin.bluegreen)
	helloPodImages(t, e.kube)
	ctx := context.Background()
	run := "  traffic: service\n"

	_, err := e.api.UploadRevision(ctx, strings.NewReader(string(e.bundle("weighted",
		e.spec(specParts{run: run, extra: quick + "strategy: { preset: Canary10Percent5Minutes }\n"}), nil))), "weighted")
	if err == nil || !strings.Contains(err.Error(), "strategy.preset: weight 10: with kubernetes.traffic: service") {
		t.Fatalf("a canary with traffic: service: %v; want the spec refused at strategy.preset", err)
	}

	d := e.deploy("v1", e.spec(specParts{run: run, extra: quick}), nil)
	d = e.waitEnd(d.ID, 2*time.Minute)
	for _, w := range []string{"service " + e.kubeNS + "/shop-test", "cannot record fleet", "loopback"} {
		if d.Outcome != "rolled_back" || !strings.Contains(d.Reason, w) {
			t.Fatalf("v1: %s (%s); want rolled_back with %q in the reason\n%s", d.Outcome, d.Reason, w, e.eventLog(d.ID))
		}
	}
	t.Logf("v1: %s", d.Reason)

	svcs, err := e.kube.Client(t).CoreV1().Services(e.kubeNS).List(ctx, metav1.ListOptions{LabelSelector: "bluegreen.io/app=shop"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range svcs.Items {
		got[s.Name] = s.Spec.Selector["bluegreen.io/fleet"]
		if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].Kind != "ConfigMap" {
			t.Errorf("service %s is owned by %+v, want the app's ConfigMap", s.Name, s.OwnerReferences)
		}
	}
	// Production never selected green; the test Service went back to none.
	if got["shop"] != "none" || got["shop-test"] != "none" || got["shop-blue"] != "none" || got["shop-green"] == "" {
		t.Fatalf("services select %v; want shop, shop-test and shop-blue on none, shop-green on green's slot", got)
	}
	e.checkAllPods("after the rollback")
}
