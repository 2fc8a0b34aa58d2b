package kubernetes

import (
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"bluegreen/internal/platform"
)

// An API server that does not answer fails each call with an error that
// names it and says the call may succeed later.
func TestUnreachableAPIServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	p, err := New(Options{Config: &rest.Config{Host: "https://" + addr}, Owner: "o", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = p.List(testCtx(t), "")
	if !errors.Is(err, platform.ErrUnavailable) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("List with no API server: %v; want ErrUnavailable naming %s", err, addr)
	}
	if err := p.Stop(testCtx(t), "shop-1-blue-0", time.Second); !errors.Is(err, platform.ErrUnavailable) {
		t.Errorf("Stop with no API server: %v", err)
	}
}

// A spec the platform cannot run is refused before anything is made.
func TestSpecsRefused(t *testing.T) {
	p, err := New(Options{Config: &rest.Config{Host: "https://127.0.0.1:1"}, Namespace: "shop", Owner: "o"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	img := platform.Image{Ref: "shop:1", ID: "sha256:" + strings.Repeat("1", 64)}
	for _, tc := range []struct {
		name string
		mod  func(*platform.InstanceSpec)
		want string
	}{
		{"no container", func(s *platform.InstanceSpec) { s.Container = nil }, "runs images"},
		{"not pinned", func(s *platform.InstanceSpec) { s.Container.Image = platform.Image{Ref: "shop:1"} }, "not pinned"},
		{"stop signal", func(s *platform.InstanceSpec) { s.StopSignal = "SIGQUIT" }, "stop signal SIGQUIT"},
		{"volume", func(s *platform.InstanceSpec) {
			s.Container.Volumes = []platform.Volume{{Source: "conf", Target: "/etc/shop"}}
		}, "volume /etc/shop"},
		{"namespace", func(s *platform.InstanceSpec) { s.Container.Namespace = "other" }, "namespace other: this server runs its pods in namespace shop"},
		{"user name", func(s *platform.InstanceSpec) { s.Container.User = "www-data" }, `container user "www-data"`},
	} {
		s := platform.InstanceSpec{ID: "shop-1-blue-0", App: "shop", Container: &platform.Container{Image: img}}
		tc.mod(&s)
		_, err := p.Launch(testCtx(t), s)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "shop-1-blue-0") {
			t.Errorf("%s: Launch: %v; want an error naming the instance and %q", tc.name, err, tc.want)
		}
	}
}

// A server finds a cluster only where it is told: --kubeconfig, KUBECONFIG
// or the pod it runs in; a kubeconfig that cannot be read is named.
func TestWhichCluster(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("HOME", t.TempDir()) // a ~/.kube/config there would not count either
	if Configured("") {
		t.Errorf("Configured with nothing named")
	}
	if !Configured("/etc/bg/kubeconfig") {
		t.Errorf("not Configured with a kubeconfig named")
	}
	_, err := New(Options{Kubeconfig: "/nonexistent/kubeconfig", KubeconfigSource: "--kubeconfig", Owner: "o"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/kubeconfig (from --kubeconfig)") {
		t.Errorf("New with a missing kubeconfig: %v", err)
	}
	kc := t.TempDir() + "/kubeconfig"
	const text = "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\n" +
		"users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u, namespace: shop}}]\ncurrent-context: x\n"
	if err := os.WriteFile(kc, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kc)
	if !Configured("") {
		t.Errorf("not Configured with KUBECONFIG set")
	}
	p, err := New(Options{Owner: "o"})
	if err != nil {
		t.Fatal(err)
	}
	if server, from := p.Cluster(); server != "https://127.0.0.1:1" || !strings.Contains(from, "KUBECONFIG") || p.Namespace() != "shop" {
		t.Errorf("from KUBECONFIG: server %s from %s, namespace %s", server, from, p.Namespace())
	}
}
