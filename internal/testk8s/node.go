package testk8s

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// pauseRef is the pod sandbox image, built from ./pause and imported at
// start: no registry can be reached for the usual one.
const pauseRef = "bluegreen.test/pause:1"

func (c *Cluster) containerdSocket() string { return filepath.Join(c.Dir, "containerd.sock") }

// startContainerd runs a containerd of the cluster's own in the node's
// network namespace (its containers on the host's network share it): its
// root, state and socket in the cluster's directory, CRI with the cgroupfs
// driver, the local pause image, and a network configuration of only the
// loopback plugin (pods use the node's network; the runtime must still
// report its network ready for the node to be Ready).
func (c *Cluster) startContainerd() (*proc, error) {
	d := c.Dir
	conflist := `{"cniVersion":"0.4.0","name":"loopback-only","plugins":[{"type":"loopback"}]}` + "\n"
	if err := os.WriteFile(filepath.Join(d, "cni", "10-loopback.conflist"), []byte(conflist), 0o644); err != nil {
		return nil, err
	}
	config := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[plugins."io.containerd.internal.v1.opt"]
  path = %[5]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[6]q
  stream_server_address = "127.0.0.1"
  stream_server_port = "%[8]d"
  enable_selinux = false
  disable_apparmor = true
  # Root here may lack CAP_SYS_RESOURCE: runc then cannot lower a
  # container's oom_score_adj below containerd's own. Clamp it instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[7]q
`, filepath.Join(d, "containerd", "root"), filepath.Join(d, "containerd", "state"),
		c.containerdSocket(), c.containerdSocket()+".ttrpc", filepath.Join(d, "containerd", "opt"),
		pauseRef, filepath.Join(d, "cni"), streamPort)
	path := filepath.Join(d, "containerd", "config.toml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		return nil, err
	}
	cmd, args := inNetns("containerd", "--config", path)
	return c.start("containerd", cmd, args...)
}

// startKubelet runs the kubelet in the node's network namespace, serving
// on the node's address, with the cgroupfs driver.
func (c *Cluster) startKubelet(bin string) (*proc, error) {
	d := c.Dir
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
# Root here may lack CAP_SYS_RESOURCE: the default -999 cannot be set.
oomScoreAdj: 0
makeIPTablesUtilChains: false
podLogsDir: %s
volumePluginDir: %s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "50Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
serializeImagePulls: false
nodeStatusUpdateFrequency: 4s
nodeStatusReportFrequency: 10s
syncFrequency: 10s
fileCheckFrequency: 10s
maxPods: 100
`, NodeIP, kubeletPort, kubeletHealthPort, c.containerdSocket(), filepath.Join(d, "pod-logs"), filepath.Join(d, "kubelet-plugins"))
	path := filepath.Join(d, "kubelet.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		return nil, err
	}
	// With an external cloud provider the kubelet leaves the node's
	// addresses to someone else, and waitNode sets NodeIP alone (else the
	// hostname would be one, which the API server would resolve). It uses
	// the admin's kubeconfig: fine for a throwaway cluster.
	cmd, args := inNetns(filepath.Join(bin, "kubelet"),
		"--config", path, "--kubeconfig", c.Kubeconfig, "--root-dir", filepath.Join(d, "kubelet"),
		"--hostname-override", c.Node, "--node-ip", NodeIP, "--cloud-provider", "external", "--v", "1")
	return c.start("kubelet", cmd, args...)
}

// waitNode waits for the kubelet to register the node, gives the node the
// address NodeIP alone (no hostname, which the apiserver would resolve),
// removes the taint an external cloud provider would lift, and waits until
// the node is Ready.
func (c *Cluster) waitNode(kubelet *proc, step func(string)) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var node *corev1.Node
	if err := waitFor(kubelet, "the kubelet to register the node", func() bool {
		node, err = cs.CoreV1().Nodes().Get(ctx, c.Node, metav1.GetOptions{})
		return err == nil
	}); err != nil {
		return err
	}
	step("node registered")
	patch := []byte(`{"status":{"addresses":[{"type":"InternalIP","address":"` + NodeIP + `"}]}}`)
	if _, err := cs.CoreV1().Nodes().Patch(ctx, c.Node, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("setting the node's address: %w", err)
	}
	for {
		taints := slices.DeleteFunc(slices.Clone(node.Spec.Taints), func(t corev1.Taint) bool {
			return t.Key == "node.cloudprovider.kubernetes.io/uninitialized"
		})
		if len(taints) == len(node.Spec.Taints) {
			break
		}
		node.Spec.Taints = taints
		if _, err = cs.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond) // a conflict with the kubelet's own update
		if node, err = cs.CoreV1().Nodes().Get(ctx, c.Node, metav1.GetOptions{}); err != nil {
			return fmt.Errorf("removing the node's uninitialized taint: %w", err)
		}
	}
	return waitFor(kubelet, "the node to be Ready", func() bool {
		n, err := cs.CoreV1().Nodes().Get(ctx, c.Node, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue
			}
		}
		return false
	})
}
