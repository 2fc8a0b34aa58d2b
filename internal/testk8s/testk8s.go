// Package testk8s runs a real single-node Kubernetes cluster for tests:
// etcd, kube-apiserver (a static admin token, RBAC), kube-controller-manager,
// kube-scheduler, a containerd of its own and a real kubelet, offline.
// The node (containerd, the kubelet, and so the pods) runs in a network
// namespace of its own, bgk8s, joined to the machine by a veth pair and
// nothing else: the node's address is NodeIP (10.233.0.2), the machine's
// end HostIP (10.233.0.1), where the API server listens. Pods run for real
// on the node's network (hostNetwork), each on a port of its own: a pod's
// IP is NodeIP, and tests, the server and its router reach it there. A
// pod must listen on its IP (HOST, which the Kubernetes platform sets from
// the downward API) or on every address, not on 127.0.0.1, which is the
// node's own loopback. There is no pod network, no Service traffic (no
// kube-proxy; EndpointSlices are computed as on any cluster) and no
// registry: images are imported into containerd (ImportBinary) and run
// with imagePullPolicy Never.
//
// The binaries come from scripts/k8s/build.sh (built once from the Go
// module proxy, cached under ~/.cache/bluegreen); containerd, runc and the
// loopback CNI plugin from Debian's packages, which scripts/setup.sh
// installs. A test fails, never skips, when the cluster cannot start.
//
// Shared starts the cluster at its first call in a test binary; Close,
// called from TestMain after m.Run, tears it down and puts back what the
// kubelet changed on the machine (three sysctls, its cgroups) and removes
// the node's network namespace and veth pair. New starts
// one for a single test. One cluster
// can run on a machine at a time (the kubelet's /kubepods cgroups are the
// machine's), so test binaries take turns: a second one waits in Shared
// until the first has closed its cluster.
package testk8s

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Cluster is a running cluster.
type Cluster struct {
	// Dir holds everything of the cluster: data, sockets, logs, the
	// kubeconfig (/tmp/bgk8s-…, short for the socket paths).
	Dir string
	// Kubeconfig is the path of a kubeconfig of the cluster's admin.
	Kubeconfig string
	// Node is the name of the cluster's only node.
	Node string
	// Token is the admin's bearer token.
	Token string
	// UserToken is the bearer token of User, who may do nothing until a
	// test binds a role to it.
	UserToken string

	apiPort int
	netns   bool    // the node's network namespace was made
	procs   []*proc // in the order they were started
	saved   sysctls
	created []string // host directories that did not exist before
	lock    *os.File // held while the cluster runs
}

// User is a user of the cluster with no permission of its own, for tests
// of what a role allows.
const User = "bluegreen"

// lockPath serialises clusters across test binaries.
const lockPath = "/tmp/bluegreen-k8s.lock"

var shared struct {
	once    sync.Once
	cluster *Cluster
	err     error
}

// Shared returns the test binary's cluster, starting it at the first call
// (after waiting for the cluster of another test binary to close). It
// fails the test when the cluster cannot start.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	shared.once.Do(func() { shared.cluster, shared.err = Start(os.Stderr) })
	if shared.err != nil {
		t.Fatalf("starting a Kubernetes cluster: %v", shared.err)
	}
	return shared.cluster
}

// New starts a cluster for t alone (after waiting for any other cluster of
// the machine to close) and tears it down at t's end: a test binary whose
// other tests need no cluster holds the machine's only one no longer than
// the test.
func New(t testing.TB) *Cluster {
	t.Helper()
	c, err := Start(os.Stderr)
	if err != nil {
		t.Fatalf("starting a Kubernetes cluster: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Close tears down the shared cluster, if one was started, and removes the
// images ImportBinary packed. Call it from TestMain after m.Run.
func Close() {
	if shared.cluster != nil {
		shared.cluster.Close()
	}
	removePacked()
}

// takeLock waits for the machine's cluster lock; progress says so when it
// has to wait.
func takeLock(progress func(string)) (*os.File, error) {
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		return f, nil
	}
	progress("another test binary runs the machine's Kubernetes cluster: waiting for it to close")
	start := time.Now()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("waiting for %s: %w", lockPath, err)
	}
	progress(fmt.Sprintf("waited %v for the other cluster", time.Since(start).Round(time.Second)))
	return f, nil
}

// RESTConfig returns a client configuration of the cluster's admin.
func (c *Cluster) RESTConfig(t testing.TB) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Namespace makes a namespace of the test's own and returns its name and
// the path of a kubeconfig whose context uses it. The namespace is deleted
// at the test's end, and with it whatever runs there.
func (c *Cluster) Namespace(t testing.TB) (name, kubeconfig string) {
	t.Helper()
	name = "t-" + randomHex(4)
	cs := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(c.kubeconfig(name)), 0o600); err != nil {
		t.Fatal(err)
	}
	return name, kubeconfig
}

// UserKubeconfig writes a kubeconfig of User (who has no role until a
// test binds one) whose context names namespace, and returns its path.
func (c *Cluster) UserKubeconfig(t testing.TB, namespace string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig-user")
	if err := os.WriteFile(path, []byte(c.kubeconfigOf(User, c.UserToken, namespace)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// UserRESTConfig returns a client configuration of User.
func (c *Cluster) UserRESTConfig(t testing.TB) *rest.Config {
	t.Helper()
	cfg := c.RESTConfig(t)
	cfg.BearerToken = c.UserToken
	return cfg
}

// Client returns a clientset of the cluster's admin.
func (c *Cluster) Client(t testing.TB) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c.RESTConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}
