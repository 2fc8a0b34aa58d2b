package kubernetes

import (
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"
)

// The manifests in examples/kubernetes decode strictly as the objects they
// say they are, and the server's runs as the account bound to the Role.
func TestShippedManifests(t *testing.T) {
	dec := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	kinds := map[string]int{}
	var dep *appsv1.Deployment
	var binding *rbacv1.RoleBinding
	var role *rbacv1.Role
	for _, file := range []string{"role.yaml", "server.yaml"} {
		b, err := os.ReadFile("../../../examples/kubernetes/" + file)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range strings.Split(string(b), "\n---\n") {
			obj, gvk, err := dec.Decode([]byte(doc), nil, nil)
			if err != nil {
				t.Fatalf("%s, document %d: %v", file, i+1, err)
			}
			kinds[gvk.Kind]++
			switch o := obj.(type) {
			case *appsv1.Deployment:
				dep = o
			case *rbacv1.RoleBinding:
				binding = o
			case *rbacv1.Role:
				role = o
			}
		}
	}
	for _, k := range []string{"Role", "RoleBinding", "ServiceAccount", "PersistentVolumeClaim", "Deployment", "Service"} {
		if kinds[k] == 0 {
			t.Errorf("no %s in examples/kubernetes", k)
		}
	}
	if dep == nil || binding == nil || role == nil {
		t.Fatal("missing the Deployment, the RoleBinding or the Role")
	}
	sa := dep.Spec.Template.Spec.ServiceAccountName
	if binding.RoleRef.Name != role.Name || len(binding.Subjects) != 1 || binding.Subjects[0].Name != sa || sa == "" {
		t.Errorf("the server runs as %q; the binding gives role %q to %+v; the Role is %q", sa, binding.RoleRef.Name, binding.Subjects, role.Name)
	}
	if *dep.Spec.Replicas != 1 || dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("the server: %d replicas, strategy %s; want one, Recreate (one server per data volume)", *dep.Spec.Replicas, dep.Spec.Strategy.Type)
	}
}
