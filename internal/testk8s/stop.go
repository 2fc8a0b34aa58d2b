package testk8s

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Close tears the cluster down and puts the machine back as it was: the
// kubelet goes first (it would restart what is killed under it), then the
// pods' processes and containerd's shims, containerd, the control plane;
// then what they mounted, the kubelet's cgroups, the sysctls it changed,
// the node's network namespace and veth pair, the kubelet's links in
// /var/log/containers go, and the cluster's directory.
// Last, the machine's cluster lock is released for the next test binary.
func (c *Cluster) Close() error {
	start := time.Now()
	defer func() { fmt.Fprintf(os.Stderr, "testk8s: torn down (%.1fs)\n", time.Since(start).Seconds()) }()
	byName := map[string]*proc{}
	for _, p := range c.procs {
		byName[p.name] = p
	}
	stop := func(name string, timeout time.Duration) {
		if p := byName[name]; p != nil {
			p.stop(timeout)
		}
	}
	stop("kubelet", 10*time.Second)
	killPods()
	killMatching(func(cmd string) bool {
		return strings.Contains(cmd, "containerd-shim") && strings.Contains(cmd, c.Dir+"/")
	})
	stop("containerd", 15*time.Second)
	for _, name := range []string{"kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"} {
		stop(name, 10*time.Second)
	}
	unmountBelow(c.Dir)
	removePodCgroups()
	c.saved.restore()
	if c.netns {
		removeNetns()
	}
	cleanHost(c.Dir, c.created)
	err := os.RemoveAll(c.Dir)
	if c.lock != nil {
		c.lock.Close() // and with it the lock
		c.lock = nil
	}
	return err
}
