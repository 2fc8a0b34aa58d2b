package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// What the benchmark reads of processes, from /proc: memory, CPU time,
// threads; and the machine's limits that bound how many instances fit.

// statusKB reads a "Key:  N kB" line of /proc/PID/status (VmRSS) or of
// /proc/PID/smaps_rollup (Pss), in bytes.
func statusKB(path, key string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), key+":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %s: %w", path, key, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("%s: no %s line", path, key)
}

// rss is a process's resident memory, in bytes.
func rss(pid int) (int64, error) { return statusKB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS") }

// pss is a process's proportional share of memory (shared pages divided
// among the processes that map them), in bytes: what summing over
// thousands of copies of the same binary should count.
func pss(pid int) (int64, error) {
	return statusKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss")
}

// procStat is what the benchmark reads of /proc/PID/stat.
type procStat struct {
	ppid    int
	ticks   uint64 // utime + stime, in clock ticks
	threads int
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+2:])) // f[0] is field 3
	if len(f) < 18 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	var s procStat
	s.ppid, _ = strconv.Atoi(f[1])
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	s.ticks = ut + st
	s.threads, _ = strconv.Atoi(f[17])
	return s, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times.
const clockTicks = 100

// cpuSeconds is a process's CPU time so far.
func cpuSeconds(pid int) (float64, error) {
	s, err := readStat(pid)
	return float64(s.ticks) / clockTicks, err
}

// fleetUsage is what every instance uses together: the shims and the apps
// they run (and anything those started).
type fleetUsage struct {
	Shims     int   `json:"shims"`
	Apps      int   `json:"apps"`
	Threads   int   `json:"threads"`
	ShimPSS   int64 `json:"shim_pss_bytes"`
	AppPSS    int64 `json:"app_pss_bytes"`
	ShimCPU   float64
	AppCPU    float64
	processes map[int]bool
}

// instanceUsage finds the shims of the server's instances (processes
// running `BLUEGREEN instance-shim ID`) and their descendants, and sums
// their memory and threads.
func instanceUsage(bluegreen string) (fleetUsage, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return fleetUsage{}, err
	}
	children := map[int][]int{}
	var shims []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := readStat(pid)
		if err != nil {
			continue // gone meanwhile
		}
		children[s.ppid] = append(children[s.ppid], pid)
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
		if len(args) >= 2 && args[1] == "instance-shim" && filepath.Clean(args[0]) == filepath.Clean(bluegreen) {
			shims = append(shims, pid)
		}
	}
	u := fleetUsage{processes: map[int]bool{}}
	var add func(pid int, shim bool)
	add = func(pid int, shim bool) {
		if u.processes[pid] {
			return
		}
		u.processes[pid] = true
		s, err := readStat(pid)
		if err != nil {
			return
		}
		p, _ := pss(pid)
		u.Threads += s.threads
		if shim {
			u.Shims++
			u.ShimPSS += p
			u.ShimCPU += float64(s.ticks) / clockTicks
		} else {
			u.Apps++
			u.AppPSS += p
			u.AppCPU += float64(s.ticks) / clockTicks
		}
		for _, c := range children[pid] {
			add(c, false)
		}
	}
	for _, pid := range shims {
		add(pid, true)
	}
	return u, nil
}

// readPidFile reads a pid file.
func readPidFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// limits are the machine's bounds on how many instances fit.
type limits struct {
	PidMax       int   `json:"pid_max"`
	TasksInUse   int   `json:"tasks_in_use"`
	MemAvailable int64 `json:"mem_available_bytes"`
	MemTotal     int64 `json:"mem_total_bytes"`
	OpenFiles    int   `json:"open_files_limit"`
}

func readLimits() limits {
	var l limits
	if b, err := os.ReadFile("/proc/sys/kernel/pid_max"); err == nil {
		l.PidMax, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	l.MemAvailable, _ = statusKB("/proc/meminfo", "MemAvailable")
	l.MemTotal, _ = statusKB("/proc/meminfo", "MemTotal")
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err == nil {
				if ts, err := os.ReadDir("/proc/" + e.Name() + "/task"); err == nil {
					l.TasksInUse += len(ts)
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/self/limits"); err == nil {
		for line := range strings.Lines(string(b)) {
			if f := strings.Fields(line); len(f) >= 5 && strings.HasPrefix(line, "Max open files") {
				l.OpenFiles, _ = strconv.Atoi(f[3])
			}
		}
	}
	return l
}

// What the machine must have room for: the apps' and the shims' threads
// (each takes a process ID), and their memory. Measured at a thousand
// instances: the app (bench/scale/app) is one thread and about 0.35 MB; a
// shim, a Go program, about 7 threads and 6.5 MB (PSS). With a shim per
// instance, the shims are nearly all of the cost; with a shim per fleet,
// one per app (two for an app being deployed).
const (
	tasksPerApp  = 1
	memoryPerApp = 512 << 10
	tasksPerShim = 8
	memoryOfShim = 8 << 20
)

// checkRoom refuses a size the machine cannot hold, naming the limit,
// before anything starts: running the machine out of process IDs would
// fail every fork on it, other people's included.
func checkRoom(o options) error {
	l := readLimits()
	// A wave runs green beside blue for the apps it deploys at once.
	fleets := o.Apps + min(o.Parallel, o.Apps)
	n := fleets * o.Instances
	shims := n
	if o.ShimPer == "fleet" {
		shims = fleets
	}
	if need := n*tasksPerApp + shims*tasksPerShim; l.PidMax > 0 && l.TasksInUse+need > l.PidMax*8/10 {
		return fmt.Errorf("%d apps × %d instances need about %d process IDs at a wave's peak (%d instances, %d shims of %d threads, with -shim-per %s), and %d of kernel.pid_max %d are in use: that passes 80 %% of it; raise kernel.pid_max, measure fewer or use -shim-per fleet",
			o.Apps, o.Instances, need, n, shims, tasksPerShim, o.ShimPer, l.TasksInUse, l.PidMax)
	}
	if need := int64(n)*memoryPerApp + int64(shims)*memoryOfShim; l.MemAvailable > 0 && need > l.MemAvailable*8/10 {
		return fmt.Errorf("%d apps × %d instances need about %d MiB at a wave's peak (%d instances, %d shims of %d MiB, with -shim-per %s), and %d MiB are available: measure fewer or use -shim-per fleet",
			o.Apps, o.Instances, need>>20, n, shims, memoryOfShim>>20, o.ShimPer, l.MemAvailable>>20)
	}
	return nil
}
