package testk8s

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// The node lives in a network namespace of its own, so that it has an
// address that is not loopback: the cluster refuses loopback addresses in
// EndpointSlices, and a Service's endpoints are what traffic: service
// verifies. The namespace is joined to the machine by a veth pair on a /30
// and nothing else: it has no default route, so nothing in it (the kubelet,
// the pods) can send a packet anywhere but to the machine's end of the
// pair, which is where the control plane, the tests and bluegreen's router
// are. No traffic leaves the machine.
const (
	// netnsName is the node's network namespace (/run/netns/bgk8s).
	netnsName = "bgk8s"
	// hostLink and nodeLink are the veth pair's ends: the machine's, and
	// the node's inside the namespace.
	hostLink = "bgk8s0"
	nodeLink = "bgk8s1"
	// HostIP is the machine's end of the pair, where the API server
	// listens for the kubelet (and everyone else).
	HostIP = "10.233.0.1"
	// NodeIP is the node's address: its InternalIP, and so the IP of every
	// pod (pods use the node's network), where tests and the router reach
	// them.
	NodeIP = "10.233.0.2"
	// netPrefix is the pair's network, checked against the machine's
	// routes before it is used.
	netPrefix = "10.233.0.0/30"
)

// The node's own ports in its namespace are fixed and below 10000, where
// neither the platform (the kernel's ephemeral range) nor the tests
// (internal/freeport, from 10000 up) draw a pod's port.
const (
	kubeletPort       = 9250
	kubeletHealthPort = 9248
	streamPort        = 9010
)

// netnsPath is the namespace as ip netns mounts it.
func netnsPath() string { return "/run/netns/" + netnsName }

// setupNetns makes the node's namespace and the veth pair, after removing
// what a cluster that died may have left of them.
func setupNetns() error {
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("ip is not installed: run scripts/setup.sh (it installs Debian's iproute2)")
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		return errors.New("nsenter is not installed: run scripts/setup.sh (it installs Debian's util-linux)")
	}
	removeNetns()
	if err := checkRoutes(); err != nil {
		return err
	}
	steps := [][]string{
		{"netns", "add", netnsName},
		{"link", "add", hostLink, "type", "veth", "peer", "name", nodeLink},
		{"link", "set", nodeLink, "netns", netnsName},
		{"addr", "add", HostIP + "/30", "dev", hostLink},
		{"link", "set", hostLink, "up"},
		{"-n", netnsName, "link", "set", "lo", "up"},
		{"-n", netnsName, "addr", "add", NodeIP + "/30", "dev", nodeLink},
		{"-n", netnsName, "link", "set", nodeLink, "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			return fmt.Errorf("making the node's network namespace: ip %s: %v: %s", strings.Join(s, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// checkRoutes refuses a machine where a route other than the default one
// already covers the pair's network: the node would clash with it.
func checkRoutes() error {
	out, err := exec.Command("ip", "-4", "route", "show", "match", NodeIP).Output()
	if err != nil {
		return fmt.Errorf("reading the machine's routes: ip route: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !strings.HasPrefix(line, "default ") {
			return fmt.Errorf("the test cluster's node network %s clashes with a route of this machine: %q", netPrefix, line)
		}
	}
	return nil
}

// removeNetns removes the namespace and the veth pair, whether or not
// they exist (deleting one end of a pair deletes both; a namespace whose
// processes are gone goes with its mount).
func removeNetns() {
	exec.Command("ip", "link", "del", hostLink).Run()
	exec.Command("ip", "netns", "del", netnsName).Run()
}

// inNetns is the command line that runs bin with args in the node's
// namespace (nsenter joins the namespace and executes bin: the process is
// bin's, with nsenter's PID).
func inNetns(bin string, args ...string) (string, []string) {
	return "nsenter", append([]string{"--net=" + netnsPath(), "--", bin}, args...)
}

// releaseNetnsDir undoes what ip netns add did to /run/netns when the
// cluster made it: the directory is mounted on itself (so that namespaces
// mounted in it propagate); unmounted, the empty directory can be removed.
func releaseNetnsDir(created []string) {
	for _, d := range created {
		if d != "/run/netns" {
			continue
		}
		if ents, err := os.ReadDir(d); err == nil && len(ents) == 0 && len(mountsBelow(d)) > 0 {
			syscall.Unmount(d, syscall.MNT_DETACH)
		}
	}
}
