package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"

	"bluegreen/internal/testdocker"
	"bluegreen/internal/testk8s"
	"bluegreen/internal/testwait"
)

// What goes wrong with pods ends a deployment with the pod's own reason,
// and blue (revision 1) serves throughout: an image the node does not have
// (refused when the revision is made), an image gone from the node by the
// time its pods start, an app that crashes as it starts, one that never
// passes its health check, and a pod no node can take. Then a server whose
// user has no role in its namespace: the cluster's refusal, naming the
// object, the namespace and the user.
func TestKubernetesFailuresRollBack(t *testing.T) {
	c := testk8s.New(t)
	ns, kubeconfig := c.Namespace(t)
	e := startDeployEnv(t, bin.bluegreen, func(e *deployEnv) {
		e.kube, e.kubeNS, e.kubeImage = c, ns, "bluegreen.test/hello:1"
		e.env = []string{"KUBECONFIG=" + kubeconfig}
		e.args = append(e.args, "--kubernetes-start-timeout", "5s")
	})
	helloPodImages(t, c)
	prog := testdocker.GoBinary(t, "bluegreen/examples/hello")
	gone := c.ImportImage(t, prog, "bluegreen.test/hello:gone", map[string]string{"/VERSION": "v3\n"})
	ctx := context.Background()
	e.deployLive("v1", e.specFor(quick))

	// rolledBack deploys spec and wants it rolled back with every one of
	// want in its reason, and revision 1 still live on its pods.
	rolledBack := func(what, spec string, files map[string]string, before func(id string), want ...string) {
		t.Helper()
		d := e.deploy(what, spec, files)
		if before != nil {
			before(d.ID)
		}
		d = e.waitEnd(d.ID, 90*time.Second)
		if d.Outcome != "rolled_back" {
			t.Fatalf("%s: %s (%s), want rolled_back\n%s", what, d.Outcome, d.Reason, e.eventLog(d.ID))
		}
		for _, w := range want {
			if !strings.Contains(d.Reason, w) {
				t.Fatalf("%s: rolled back for %q; want %q in the reason", what, d.Reason, w)
			}
		}
		t.Logf("%s: %s", what, d.Reason)
		if app, err := e.api.App(ctx, "shop"); err != nil || app.LiveRevision != 1 {
			t.Fatalf("%s: live revision %d (%v), want 1", what, app.LiveRevision, err)
		}
		e.checkPods("after " + what)
	}

	// An image the node does not have: refused with the kubelet's words.
	e.kubeImage = "bluegreen.test/nowhere:1"
	_, err := e.api.UploadRevision(ctx, strings.NewReader(string(e.bundle("nowhere", e.specFor(quick), nil))), "nowhere")
	if err == nil || !strings.Contains(err.Error(), "bluegreen.test/nowhere:1") || !strings.Contains(err.Error(), "ErrImageNeverPull") {
		t.Fatalf("a revision of an image the node lacks: %v; want the image and the kubelet's reason", err)
	}
	t.Logf("missing image: %v", err)

	// An image pinned, then removed from the node before green's pods
	// start (a node that lost it, another node that never had it).
	gates := t.TempDir()
	e.kubeImage = "bluegreen.test/hello:gone"
	gated := quick + "hooks:\n  before_install: [{ run: ./hooks/gate.sh, timeout: 1m }]\n"
	rolledBack("gone", e.specFor(gated), map[string]string{"hooks/gate.sh": gateHook(gates)}, func(id string) {
		e.waitPhase(id, 30*time.Second, "Provisioning")
		c.ForgetImage(t, gone)
		openGate(t, gates, "before_install")
	}, "ErrImageNeverPull", "bg-")
	e.kubeImage = "bluegreen.test/hello:2"

	// An app that crashes as it starts: the exit, and what it wrote.
	rolledBack("crash", e.spec(specParts{extra: quick, env: "{ HELLO_EXIT_AFTER: 0s }"}), nil, nil,
		"exited with code 1", "HELLO_EXIT_AFTER")

	// Running, never healthy.
	rolledBack("never ready", e.spec(specParts{extra: quick, env: "{ HELLO_FAIL_HEALTH: 1 }", startup: "3s"}), nil, nil,
		"green never became healthy", "/healthz", "503")

	// No node has the label the pods ask for.
	rolledBack("unschedulable", e.spec(specParts{extra: quick, run: "  node_selector: { disk: ssd }\n"}), nil, nil,
		"Unschedulable", "did not start within 5s", "node affinity/selector")

	// A server whose user may do nothing in its namespace.
	other, _ := c.Namespace(t)
	denied := startDeployEnv(t, bin.bluegreen, func(d *deployEnv) {
		d.kube, d.kubeNS, d.kubeImage = c, other, "bluegreen.test/hello:1"
		d.env = []string{"KUBECONFIG=" + c.UserKubeconfig(t, other)}
	})
	_, err = denied.api.UploadRevision(ctx, strings.NewReader(string(denied.bundle("v1", denied.specFor(quick), nil))), "v1")
	msg := fmt.Sprint(err)
	for _, w := range []string{"forbidden", "pods", `namespace "` + other + `"`, `User "` + testk8s.User + `"`} {
		if !strings.Contains(msg, w) {
			t.Fatalf("a server without a role in its namespace: %v; want %q in the error", err, w)
		}
	}
	t.Logf("no role: %v", err)

	// Bound to the shipped Role, the same server makes the revision.
	bindShippedRole(t, c, other)
	testwait.For(t, 30*time.Second, "the role to apply", func() bool {
		_, err = denied.api.UploadRevision(ctx, strings.NewReader(string(denied.bundle("v1", denied.specFor(quick), nil))), "v1")
		return err == nil
	})
}

// bindShippedRole creates the Role of examples/kubernetes/role.yaml in ns
// and binds testk8s.User to it.
func bindShippedRole(t *testing.T, c *testk8s.Cluster, ns string) {
	t.Helper()
	f, err := os.Open("../../examples/kubernetes/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var role rbacv1.Role
	if err := yaml.NewYAMLOrJSONDecoder(f, 4096).Decode(&role); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rbac := c.Client(t).RbacV1()
	if _, err := rbac.Roles(ns).Create(ctx, &role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bluegreen"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: testk8s.User}},
	}
	if _, err := rbac.RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
