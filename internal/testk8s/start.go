package testk8s

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"bluegreen/internal/freeport"
)

// nodeName is the name of the cluster's node.
const nodeName = "bluegreen-test-node"

// startTimeout bounds each step of the start; the whole cluster is usually
// up in 10 to 20 seconds.
const startTimeout = 2 * time.Minute

// Start starts a cluster, after waiting for the machine's cluster lock,
// and returns once its node is Ready. progress receives a line per step.
// Close tears it down.
func Start(progress io.Writer) (*Cluster, error) {
	say := func(s string) { fmt.Fprintln(progress, "testk8s:", s) }
	lock, err := takeLock(say)
	if err != nil {
		return nil, err
	}
	sweep()
	bins, err := binaries()
	if err != nil {
		lock.Close()
		return nil, err
	}
	dir, err := os.MkdirTemp("/tmp", "bgk8s-")
	if err != nil {
		lock.Close()
		return nil, err
	}
	c := &Cluster{Dir: dir, Node: nodeName, lock: lock}
	t0 := time.Now()
	if err := c.boot(bins, func(s string) { say(fmt.Sprintf("%s (%.1fs)", s, time.Since(t0).Seconds())) }); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// binaries returns the directory of the Kubernetes binaries, building them
// (scripts/k8s/build.sh, a no-op when they are cached), and checks that
// the Debian packages the node needs are there.
func binaries() (string, error) {
	for _, b := range []string{"containerd", "ctr", "runc"} {
		if _, err := exec.LookPath(b); err != nil {
			return "", fmt.Errorf("%s is not installed: run scripts/setup.sh (it installs Debian's docker.io, which brings containerd and runc)", b)
		}
	}
	if _, err := os.Stat("/usr/lib/cni/loopback"); err != nil {
		return "", errors.New("the loopback CNI plugin (/usr/lib/cni/loopback) is not installed: run scripts/setup.sh (it installs Debian's containernetworking-plugins)")
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	mod := strings.TrimSpace(string(out))
	if err != nil || mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("finding the module's root to run scripts/k8s/build.sh: go env GOMOD: %v", err)
	}
	cmd := exec.Command(filepath.Join(filepath.Dir(mod), "scripts", "k8s", "build.sh"))
	cmd.Stderr = os.Stderr
	out, err = cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/k8s/build.sh: %v", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// ports of the control plane: etcd's on 127.0.0.1, the API server's on
// HostIP. The node's are fixed (kubeletPort...): its namespace is its own.
type ports struct {
	etcd, etcdPeer, api int
}

func freePorts() (ports, error) {
	seen := map[int]bool{}
	var ps [3]int
	for i := range ps {
		for {
			addr, err := freeport.Addr()
			if err != nil {
				return ports{}, err
			}
			_, p, _ := net.SplitHostPort(addr)
			n, _ := strconv.Atoi(p)
			if !seen[n] {
				seen[n], ps[i] = true, n
				break
			}
		}
	}
	return ports{ps[0], ps[1], ps[2]}, nil
}

// boot starts every part of the cluster in order and waits for each.
func (c *Cluster) boot(bin string, step func(string)) error {
	d := c.Dir
	for _, sub := range []string{"logs", "pki", "kubelet", "pod-logs", "kubelet-plugins", "flexvolume", "cni", "containerd"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
			return err
		}
	}
	owner := fmt.Sprintf("%d %d\n", os.Getpid(), startTicks(os.Getpid()))
	if err := os.WriteFile(filepath.Join(d, "owner"), []byte(owner), 0o644); err != nil {
		return err
	}
	c.saved = saveSysctls()
	for _, h := range hostDirs {
		if _, err := os.Stat(h); os.IsNotExist(err) {
			c.created = append(c.created, h)
		}
	}
	// Written before anything starts, for a sweep after a crash.
	if err := os.WriteFile(filepath.Join(d, "sysctl.saved"), []byte(c.saved.encode()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d, "created-dirs"), []byte(strings.Join(c.created, "\n")), 0o644); err != nil {
		return err
	}
	p, err := freePorts()
	if err != nil {
		return err
	}
	c.apiPort = p.api
	if err := c.writePKI(); err != nil {
		return err
	}
	c.netns = true // for Close, even if only part of it is made
	if err := setupNetns(); err != nil {
		return err
	}
	step("node network namespace " + netnsName + " ready (" + HostIP + " here, " + NodeIP + " the node)")

	etcd, err := c.start("etcd", filepath.Join(bin, "etcd"),
		"--name", "node", "--data-dir", filepath.Join(d, "etcd"), "--unsafe-no-fsync",
		"--logger", "zap", "--log-level", "warn",
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", p.etcd),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", p.etcd),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", p.etcdPeer),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", p.etcdPeer),
		"--initial-cluster", fmt.Sprintf("node=http://127.0.0.1:%d", p.etcdPeer))
	if err != nil {
		return err
	}
	if err := waitFor(etcd, "etcd to answer", func() bool {
		return httpOK(fmt.Sprintf("http://127.0.0.1:%d/health", p.etcd), "", `"health":"true"`)
	}); err != nil {
		return err
	}
	step("etcd ready")

	api, err := c.start("kube-apiserver", filepath.Join(bin, "kube-apiserver"),
		"--etcd-servers", fmt.Sprintf("http://127.0.0.1:%d", p.etcd),
		// On the machine's end of the node's veth pair: the kubelet, in
		// the node's namespace, reaches it there, and so does everyone
		// else (one address: the API server binds one, or all).
		"--bind-address", HostIP, "--advertise-address", HostIP,
		"--secure-port", strconv.Itoa(p.api), "--cert-dir", filepath.Join(d, "pki"),
		"--token-auth-file", filepath.Join(d, "pki", "tokens.csv"), "--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(d, "pki", "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(d, "pki", "sa.key"),
		"--service-cluster-ip-range", "10.96.0.0/16", "--endpoint-reconciler-type", "none",
		// Pods need no service account token here: nothing in them calls
		// the API.
		"--disable-admission-plugins", "ServiceAccount")
	if err != nil {
		return err
	}
	if err := c.writeKubeconfig(); err != nil {
		return err
	}
	if err := waitFor(api, "kube-apiserver to be ready", func() bool {
		return httpOK(fmt.Sprintf("https://%s:%d/readyz", HostIP, p.api), c.Token, "ok")
	}); err != nil {
		return err
	}
	step("kube-apiserver ready")

	if _, err := c.start("kube-controller-manager", filepath.Join(bin, "kube-controller-manager"),
		"--kubeconfig", c.Kubeconfig, "--bind-address", "127.0.0.1", "--secure-port", "0",
		"--leader-elect=false", "--use-service-account-credentials=false",
		"--service-account-private-key-file", filepath.Join(d, "pki", "sa.key"),
		"--flex-volume-plugin-dir", filepath.Join(d, "flexvolume"),
		// The node lifecycle and garbage collector controllers stay on:
		// pods wait on the node's taints, owned objects go with their owner.
		"--controllers", "*,-nodeipam,-cloud-node-lifecycle,-ttl,-bootstrapsigner,-tokencleaner"); err != nil {
		return err
	}
	if _, err := c.start("kube-scheduler", filepath.Join(bin, "kube-scheduler"),
		"--kubeconfig", c.Kubeconfig, "--authentication-kubeconfig", c.Kubeconfig,
		"--authorization-kubeconfig", c.Kubeconfig, "--bind-address", "127.0.0.1",
		"--secure-port", "0", "--leader-elect=false"); err != nil {
		return err
	}

	ctrd, err := c.startContainerd()
	if err != nil {
		return err
	}
	if err := waitFor(ctrd, "containerd to answer", func() bool {
		return exec.Command("ctr", "--address", c.containerdSocket(), "version").Run() == nil
	}); err != nil {
		return err
	}
	if err := c.importPause(); err != nil {
		return err
	}
	step("containerd ready, pause image imported")

	kubelet, err := c.startKubelet(bin)
	if err != nil {
		return err
	}
	if err := c.waitNode(kubelet, step); err != nil {
		return err
	}
	step("node Ready")
	return nil
}

// writePKI writes the service accounts' signing key and the token file of
// the admin.
func (c *Cluster) writePKI() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	pki := filepath.Join(c.Dir, "pki")
	if err := os.WriteFile(filepath.Join(pki, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(pki, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return err
	}
	c.Token = randomHex(16)
	c.UserToken = randomHex(16)
	tokens := fmt.Sprintf("%s,admin,admin,\"system:masters\"\n%s,%s,%s\n", c.Token, c.UserToken, User, User)
	return os.WriteFile(filepath.Join(pki, "tokens.csv"), []byte(tokens), 0o600)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// writeKubeconfig writes the admin's kubeconfig.
func (c *Cluster) writeKubeconfig() error {
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	return os.WriteFile(c.Kubeconfig, []byte(c.kubeconfig("")), 0o600)
}

// kubeconfig is a kubeconfig of the admin whose context names namespace
// (none when ""). The apiserver's certificate is its own, self-signed: it
// is not verified.
func (c *Cluster) kubeconfig(namespace string) string {
	return c.kubeconfigOf("admin", c.Token, namespace)
}

// kubeconfigOf is a kubeconfig of the user with token.
func (c *Cluster) kubeconfigOf(user, token, namespace string) string {
	ns := ""
	if namespace != "" {
		ns = ", namespace: " + namespace
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "https://%s:%d", insecure-skip-tls-verify: true}}]
users: [{name: %q, user: {token: %q}}]
contexts: [{name: test, context: {cluster: test, user: %q%s}}]
current-context: test
`, HostIP, c.apiPort, user, token, user, ns)
}

// waitFor polls ok until it holds, p exits or startTimeout passes.
func waitFor(p *proc, what string, ok func() bool) error {
	deadline := time.Now().Add(startTimeout)
	for !ok() {
		if !p.running() || time.Now().After(deadline) {
			return p.failed("waiting for " + what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// httpOK reports whether GET url answers 200 with a body holding want.
func httpOK(url, token, want string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == http.StatusOK && strings.Contains(string(b), want)
}
