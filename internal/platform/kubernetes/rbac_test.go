package kubernetes

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/platformtest"
	"bluegreen/internal/testk8s"
)

// The Role shipped in examples/kubernetes is all the platform needs in a
// namespace; in a namespace where the server has no role, the cluster's
// refusal names the object and the reason, and is not taken for an outage.
func TestShippedRoleIsEnough(t *testing.T) {
	c := testk8s.Shared(t)
	ns, other := newNamespace(t, c), newNamespace(t, c)
	f, err := os.Open("../../../examples/kubernetes/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var role rbacv1.Role
	if err := yaml.NewYAMLOrJSONDecoder(f, 4096).Decode(&role); err != nil {
		t.Fatal(err)
	}
	rbac := c.Client(t).RbacV1()
	if _, err := rbac.Roles(ns).Create(testCtx(t), &role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bluegreen"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: testk8s.User}},
	}
	if _, err := rbac.RoleBindings(ns).Create(testCtx(t), binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	owner := newOwner("rbac")
	p, err := New(Options{Config: c.UserRESTConfig(t), Namespace: ns, Owner: owner, StartTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	platformtest.Eventually(t, 10*time.Second, func() string {
		if _, err := p.List(testCtx(t), ""); err != nil {
			return "the role does not apply yet: " + err.Error()
		}
		return ""
	})
	img, err := p.Resolve(testCtx(t), appImage(t, c).Ref, platform.PullNever, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := appSpec(t, c, "kube-1-blue-0", nil)
	s.Container.Image = img
	in := launch(t, p, s)
	platformtest.WaitServing(t, in)
	if got := readLogs(t, p, in.ID, 0); !strings.Contains(got, "testapp listening on") {
		t.Errorf("logs: %q", got)
	}
	if err := p.Stop(testCtx(t), in.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	launch(t, p, s)
	if err := p.DeleteApp(testCtx(t), "kube"); err != nil {
		t.Fatal(err)
	}

	q, err := New(Options{Config: c.UserRESTConfig(t), Namespace: other, Owner: owner})
	if err != nil {
		t.Fatal(err)
	}
	_, err = q.Launch(testCtx(t), s)
	if err == nil || errors.Is(err, platform.ErrUnavailable) || !strings.Contains(err.Error(), "forbidden") ||
		!strings.Contains(err.Error(), other) || !strings.Contains(err.Error(), "pods") {
		t.Fatalf("Launch in a namespace without a role: %v; want the cluster's refusal naming the namespace and the object", err)
	}
	t.Logf("the refusal: %v", err)
}
