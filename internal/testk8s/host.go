package testk8s

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// What the kubelet changes on the machine, and how it is put back.

// kubeletSysctls are the kernel settings the kubelet sets as it starts
// (it wants the kernel to overcommit memory and not to panic on an OOM,
// and more keys for the root user).
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// sysctls are saved values, by path under /proc/sys.
type sysctls map[string]string

// saveSysctls reads the settings the kubelet will change.
func saveSysctls() sysctls {
	s := sysctls{}
	for _, k := range kubeletSysctls {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil {
			s[k] = strings.TrimSpace(string(b))
		}
	}
	return s
}

// restore writes the saved settings back.
func (s sysctls) restore() {
	for k, v := range s {
		os.WriteFile("/proc/sys/"+k, []byte(v+"\n"), 0o644)
	}
}

// encode and decodeSysctls keep the saved values in the cluster's
// directory, so that a sweep can restore them after a test binary died.
func (s sysctls) encode() string {
	var b strings.Builder
	for _, k := range kubeletSysctls {
		if v, ok := s[k]; ok {
			b.WriteString(k + "=" + v + "\n")
		}
	}
	return b.String()
}

func decodeSysctls(text string) sysctls {
	s := sysctls{}
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && slices.Contains(kubeletSysctls, k) {
			s[k] = v
		}
	}
	return s
}

// podCgroups are the kubelet's cgroups (cgroupfs driver): /kubepods in
// each cgroup v1 hierarchy, or in the unified one.
func podCgroups() []string {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	if st, err := os.Stat("/sys/fs/cgroup/kubepods"); err == nil && st.IsDir() {
		dirs = append(dirs, "/sys/fs/cgroup/kubepods")
	}
	return dirs
}

// killPods SIGKILLs every process in the kubelet's cgroups: the pods'
// processes, which outlive a killed kubelet and containerd.
func killPods() {
	for range 20 {
		var pids []int
		for _, root := range podCgroups() {
			filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
					return nil
				}
				b, _ := os.ReadFile(path)
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
						pids = append(pids, pid)
					}
				}
				return nil
			})
		}
		if len(pids) == 0 {
			return
		}
		for _, pid := range slices.Compact(slices.Sorted(slices.Values(pids))) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// removePodCgroups removes the kubelet's cgroups, deepest first.
func removePodCgroups() {
	for _, root := range podCgroups() {
		var dirs []string
		filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		slices.Reverse(dirs)
		for _, d := range dirs {
			for range 50 {
				if err := syscall.Rmdir(d); err == nil || os.IsNotExist(err) {
					break
				}
				time.Sleep(20 * time.Millisecond) // its last process is still exiting
			}
		}
	}
}

// unmountBelow unmounts what is mounted at or below dir, deepest first.
func unmountBelow(dir string) {
	for _, m := range mountsBelow(dir) {
		if err := syscall.Unmount(m, 0); err != nil {
			syscall.Unmount(m, syscall.MNT_DETACH)
		}
	}
}

// mountsBelow lists the mount points at or below dir, deepest first.
func mountsBelow(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return slices.Compact(out)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// hostDirs are directories outside the cluster's own that the kubelet and
// containerd create: the kubelet's links to the pods' logs, the shims'
// sockets, the network namespaces of pods that do not use the host's
// network. Those that did not exist before the cluster are removed after.
var hostDirs = []string{"/var/log/containers", "/run/containerd", "/run/containerd/runc/k8s.io", "/run/containerd/s", "/run/netns"}

// cleanHost puts the machine back as it was before the cluster of dir:
// the links into dir go, the directories the cluster created go if empty.
func cleanHost(dir string, created []string) {
	if ents, err := os.ReadDir("/var/log/containers"); err == nil {
		for _, e := range ents {
			p := filepath.Join("/var/log/containers", e.Name())
			if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, dir+"/") {
				os.Remove(p)
			}
		}
	}
	releaseNetnsDir(created)
	for _, d := range created {
		removeEmptyDirs(d)
	}
}

// removeEmptyDirs removes dir and the directories below it that are empty.
func removeEmptyDirs(dir string) {
	var dirs []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	slices.Reverse(dirs)
	for _, d := range dirs {
		syscall.Rmdir(d)
	}
}

// sweep cleans up after the clusters of test binaries that died before
// their TestMain could. It runs under the machine's cluster lock, so no
// other cluster runs: every directory of a cluster is a leftover.
func sweep() {
	// The node's namespace may outlive its cluster's directory: removing
	// it, whether or not it is there, is cheap, and the veth pair goes at
	// once even while processes still hold the namespace.
	removeNetns()
	dirs, _ := filepath.Glob("/tmp/bgk8s-*")
	if len(dirs) == 0 && len(podCgroups()) == 0 {
		return
	}
	for _, dir := range dirs {
		killMatching(func(c string) bool { return strings.Contains(c, dir+"/") })
	}
	killPods()
	removePodCgroups()
	for _, dir := range dirs {
		unmountBelow(dir)
		if b, err := os.ReadFile(filepath.Join(dir, "sysctl.saved")); err == nil {
			decodeSysctls(string(b)).restore()
		}
		var created []string
		if b, err := os.ReadFile(filepath.Join(dir, "created-dirs")); err == nil {
			created = strings.Fields(string(b))
		}
		cleanHost(dir, created)
		os.RemoveAll(dir)
	}
}
