package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bluegreen/internal/testwait"
)

// With kubernetes.traffic: service, Services of the cluster carry the
// traffic, and each switch counts only once their EndpointSlices hold
// exactly the fleet's ready pods. From v1 to v2: shop-test holds green's
// pods while the after_allow_test_traffic hook runs (it waits on a gate
// the test opens once it has looked); after the switch shop holds green's
// pods alone, at their addresses; a rollback while blue is warm points shop
// back at blue's pods. v2 again, to the end: blue's pods run through the
// whole drain (the after_block_traffic hook, which runs once blue is
// drained, finds them, and the drain took all of drain_timeout) and go
// after it. Weighted steps are refused with the spec.
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
	if d = e.waitEnd(d.ID, 2*time.Minute); d.Outcome != "succeeded" {
		t.Fatalf("v1: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	e.checkService("after v1", "shop", e.fleetAddrs("1"))

	gates := t.TempDir()
	if err := os.Chmod(gates, 0o777); err != nil { // the hooks' user writes there
		t.Fatal(err)
	}
	hook := "{ run: ./hooks/gate.sh, timeout: 2m }"
	v2 := e.spec(specParts{run: run, extra: "bake: 1s\nretire:\n  keep_blue: 1h\n  drain_timeout: 2s\n" +
		"hooks:\n  after_allow_test_traffic: [" + hook + "]\n  after_block_traffic: [" + hook + "]\n"})
	files := map[string]string{"hooks/gate.sh": startedGateHook(gates)}
	e.kubeImage = "bluegreen.test/hello:2"
	d = e.deploy("v2", v2, files)
	waitStarted(t, gates, "after_allow_test_traffic")
	blue := e.fleetAddrs("1")
	e.checkService("while the test hook runs", "shop-test", e.fleetAddrs("2"))
	e.checkService("while the test hook runs", "shop", blue)
	openGate(t, gates, "after_allow_test_traffic")

	e.waitPhase(d.ID, 2*time.Minute, "Retiring")
	e.checkService("after the switch", "shop", e.fleetAddrs("2"))
	if got := e.fleetAddrs("1"); !slices.Equal(got, blue) {
		t.Fatalf("after the switch blue's pods are at %v; want them still at %v", got, blue)
	}

	// A rollback while blue is warm points production back at it.
	e.mustCLI("rollback", "shop")
	if d = e.waitEnd(d.ID, time.Minute); d.Outcome != "rolled_back" {
		t.Fatalf("after the rollback: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	e.checkService("after the rollback", "shop", blue)
	e.checkService("after the rollback", "shop-test", nil)

	// Revision 2 again, to the end.
	if d, err = e.api.Deploy(ctx, "shop", 2); err != nil {
		t.Fatal(err)
	}
	e.waitPhase(d.ID, 2*time.Minute, "Retiring")
	green := e.fleetAddrs("2")
	e.checkService("after the second switch", "shop", green)
	uids := e.revisionPodUIDs("1")
	e.mustCLI("promote", "shop")
	waitStarted(t, gates, "after_block_traffic")
	if got := e.revisionPodUIDs("1"); !slices.Equal(got, uids) {
		t.Fatalf("once blue is drained its running pods are %v; want the same %v as before the drain", got, uids)
	}
	// No router saw blue's requests: it was given the whole drain.
	var drained bool
	for _, ev := range e.events(d.ID) {
		if w, ok := ev.Fields["waited_seconds"].(float64); ev.Kind == "drain" && ok && w >= 2 {
			drained = true
		}
	}
	if !drained {
		t.Fatalf("no drain of blue for the whole drain_timeout (2s) before after_block_traffic:\n%s", e.eventLog(d.ID))
	}
	openGate(t, gates, "after_block_traffic")
	if d = e.waitEnd(d.ID, time.Minute); d.Outcome != "succeeded" {
		t.Fatalf("revision 2: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	e.checkService("after blue retired", "shop", green)
	e.checkAllPods("after blue retired")
	if got := e.revisionPodUIDs("1"); len(got) != 0 {
		t.Fatalf("after blue retired its pods %v still run", got)
	}

	svcs, err := e.kube.Client(t).CoreV1().Services(e.kubeNS).List(ctx, metav1.ListOptions{LabelSelector: "bluegreen.io/app=shop"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs.Items {
		if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].Kind != "ConfigMap" {
			t.Errorf("service %s is owned by %+v, want the app's ConfigMap", s.Name, s.OwnerReferences)
		}
	}
}

// fleetAddrs lists the addresses (IP:port) of the running, ready pods of
// revision rev of app shop, sorted: both of its instances.
func (e *deployEnv) fleetAddrs(rev string) []string {
	e.t.Helper()
	var out []string
	for _, p := range e.runningPods() {
		if p.Labels["bluegreen.io/revision"] != rev {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				out = append(out, net.JoinHostPort(p.Status.PodIP, p.Labels["bluegreen.io/port"]))
			}
		}
	}
	slices.Sort(out)
	if len(out) != 2 {
		e.t.Fatalf("revision %s has ready pods at %v; want its 2", rev, out)
	}
	return out
}

// revisionPodUIDs lists the UIDs of the running pods of revision rev of
// app shop, sorted.
func (e *deployEnv) revisionPodUIDs(rev string) []string {
	var out []string
	for _, p := range e.runningPods() {
		if p.Labels["bluegreen.io/revision"] == rev {
			out = append(out, string(p.UID))
		}
	}
	slices.Sort(out)
	return out
}

// checkService checks that the EndpointSlices of Service name hold exactly
// want (IP:port, sorted), each ready, as they are: the engine has verified
// them before going on, so nothing is waited for.
func (e *deployEnv) checkService(when, name string, want []string) {
	e.t.Helper()
	list, err := e.kube.Client(e.t).DiscoveryV1().EndpointSlices(e.kubeNS).List(context.Background(),
		metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + name})
	if err != nil {
		e.t.Fatal(err)
	}
	var got []string
	for _, s := range list.Items {
		for _, ep := range s.Endpoints {
			for _, port := range s.Ports {
				a := net.JoinHostPort(strings.Join(ep.Addresses, ","), strconv.Itoa(int(*port.Port)))
				if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
					a += " (not ready)"
				}
				got = append(got, a)
			}
		}
	}
	slices.Sort(got)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		e.t.Fatalf("%s: service %s's endpoints are %v; want %v", when, name, got, want)
	}
}

// startedGateHook is gateHook that first leaves a file EVENT.started in
// dir: the test knows the hook runs.
func startedGateHook(dir string) string {
	return fmt.Sprintf("#!/bin/sh\ntouch %q/\"$BG_LIFECYCLE_EVENT.started\"\n", dir) + strings.TrimPrefix(gateHook(dir), "#!/bin/sh\n")
}

// waitStarted waits until the hook of event has started.
func waitStarted(t *testing.T, dir, event string) {
	t.Helper()
	testwait.For(t, 2*time.Minute, "hook "+event+" to start", func() bool {
		_, err := os.Stat(filepath.Join(dir, event+".started"))
		return err == nil
	})
}
