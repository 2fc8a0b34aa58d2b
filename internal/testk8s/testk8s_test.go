package testk8s

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bluegreen/internal/freeport"
	"bluegreen/internal/platform/platformtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Close()
	platformtest.RemoveTestApp()
	os.Exit(code)
}

// A pod of an imported image, run by its ID on the node's network, answers
// at the node's address (its own IP, which the downward API tells it) from
// outside the node's network namespace, and its output reaches the API
// through the kubelet.
func TestPodServesOnNodeAddress(t *testing.T) {
	c := Shared(t)
	cs := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id := c.ImportBinary(t, platformtest.TestApp(t), "bluegreen.test/testapp:1")
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	addr = NodeIP + ":" + port
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: "default"},
		Spec: corev1.PodSpec{
			HostNetwork:                   true,
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: new(int64(2)),
			Containers: []corev1.Container{{
				Name: "app", Image: id, ImagePullPolicy: corev1.PullNever,
				Env: []corev1.EnvVar{{Name: "PORT", Value: port}, {Name: "HOST", ValueFrom: &corev1.EnvVarSource{
					FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"},
				}}},
			}},
		},
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.CoreV1().Pods("default").Delete(context.Background(), "smoke", metav1.DeleteOptions{}) })
	platformtest.Eventually(t, time.Minute, func() string {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "smoke", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		if p.Status.PodIP != NodeIP {
			return fmt.Sprintf("pod IP %q, phase %s: %+v", p.Status.PodIP, p.Status.Phase, p.Status.ContainerStatuses)
		}
		if _, err := platformtest.Get(addr, "/healthz"); err != nil {
			return err.Error()
		}
		return ""
	})
	platformtest.Eventually(t, 30*time.Second, func() string {
		r, err := cs.CoreV1().Pods("default").GetLogs("smoke", &corev1.PodLogOptions{}).Stream(ctx)
		if err != nil {
			return err.Error()
		}
		defer r.Close()
		b, _ := io.ReadAll(r)
		if !strings.Contains(string(b), "testapp listening on "+addr) {
			return fmt.Sprintf("logs: %q", b)
		}
		return ""
	})
}

// The node's network namespace reaches the machine's end of its veth pair
// and nothing else: it has no default route.
func TestNodeNetworkIsClosed(t *testing.T) {
	Shared(t)
	out, err := exec.Command("ip", "-n", netnsName, "-4", "route", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := netPrefix + " dev " + nodeLink + " proto kernel scope link src " + NodeIP
	if got := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("the node's routes are:\n%s\nwant only %q", got, want)
	}
}
