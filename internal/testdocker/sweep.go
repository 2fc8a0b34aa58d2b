package testdocker

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

// sweep cleans up the engines of test binaries that died before their
// TestMain could: their dockerd (if it still runs), containerd and shims,
// mounts and directories. An engine whose test binary still runs is left
// alone.
func sweep() {
	dirs, _ := filepath.Glob("/tmp/bgd-*")
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			// Just made by a starting engine, or not ours.
			if st, err := os.Stat(dir); err != nil || time.Since(st.ModTime()) < time.Minute {
				continue
			}
		} else if f := strings.Fields(string(b)); len(f) == 2 {
			pid, _ := strconv.Atoi(f[0])
			ticks, _ := strconv.ParseUint(f[1], 10, 64)
			if pid > 0 && startTicks(pid) == ticks {
				continue // its test binary still runs
			}
		}
		host := "unix://" + filepath.Join(dir, "docker.sock")
		if pid := readPid(filepath.Join(dir, "dockerd.pid")); pid > 0 && strings.Contains(cmdline(pid), dir+"/") {
			removeAllContainers(host)
			syscall.Kill(pid, syscall.SIGTERM)
			waitGone(pid, 30*time.Second)
		}
		killProcesses(func(c string) bool {
			return (strings.HasPrefix(c, "containerd\x00") || strings.Contains(c, "containerd-shim")) && strings.Contains(c, dir+"/")
		})
		cleanDir(dir)
	}
}

// cleanDir unmounts everything mounted below dir (the data root's own bind
// mount, overlays, exec/netns/default), deepest first, and removes dir.
func cleanDir(dir string) error {
	for _, m := range mountsBelow(dir) {
		if err := syscall.Unmount(m, 0); err != nil {
			syscall.Unmount(m, syscall.MNT_DETACH)
		}
	}
	return os.RemoveAll(dir)
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

// killProcesses SIGKILLs the processes whose command line (NUL-separated
// arguments) match says, and waits for them to go.
func killProcesses(match func(cmdline string) bool) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if c := cmdline(pid); c != "" && match(c) {
			syscall.Kill(pid, syscall.SIGKILL)
			waitGone(pid, 10*time.Second)
		}
	}
}

func cmdline(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return string(b)
}

func readPid(path string) int {
	b, _ := os.ReadFile(path)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// startTicks returns when pid started (field 22 of /proc/PID/stat), 0 when
// it does not run, so that a reused PID is not taken for the process.
func startTicks(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}

// waitGone waits until pid no longer runs (or is a zombie) or timeout passes.
func waitGone(pid int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		if s := string(b); strings.LastIndexByte(s, ')') > 0 {
			if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 0 && f[0] == "Z" {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}
