package process

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"time"
)

// procStat is what bluegreen reads from /proc/PID/stat.
type procStat struct {
	State      byte   // field 3: R, S, D, Z, ...
	PPID       int    // field 4
	PGID       int    // field 5
	StartTicks uint64 // field 22: start time in clock ticks since boot
}

// readStat parses /proc/PID/stat. The command name (field 2) may hold spaces
// and parentheses, so the fields are counted from the last ')'.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := bytes.Fields(b[i+2:]) // f[0] is field 3
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	var s procStat
	s.State = f[0][0]
	if s.PPID, err = strconv.Atoi(string(f[1])); err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: ppid: %w", pid, err)
	}
	if s.PGID, err = strconv.Atoi(string(f[2])); err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: pgid: %w", pid, err)
	}
	if s.StartTicks, err = strconv.ParseUint(string(f[19]), 10, 64); err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: starttime: %w", pid, err)
	}
	return s, nil
}

// alive reports whether pid is the process that started at ticks and has
// not exited. A zombie counts as gone: it runs nothing and holds no port, and
// a parent that never reaps it (init in some containers) must not keep an
// instance "running" forever. A different start time means the PID was reused.
func alive(pid int, ticks uint64) bool {
	if pid <= 0 {
		return false
	}
	s, err := readStat(pid)
	return err == nil && s.State != 'Z' && s.StartTicks == ticks
}

// groupExists reports whether any process, zombies included, is in the
// process group pgid.
func groupExists(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// childrenOf lists the processes whose parent is ppid.
func childrenOf(ppid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, err := readStat(pid); err == nil && s.PPID == ppid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times. It is 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// bootTime reads the system boot time from /proc/stat ("btime").
func bootTime() (time.Time, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, err
	}
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			sec, err := strconv.ParseInt(string(bytes.TrimSpace(rest)), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("/proc/stat: btime: %w", err)
			}
			return time.Unix(sec, 0), nil
		}
	}
	return time.Time{}, errors.New("/proc/stat: no btime line")
}

// startedAt turns a start time in ticks since boot into wall-clock time.
func startedAt(ticks uint64) time.Time {
	bt, err := bootTime()
	if err != nil {
		return time.Time{}
	}
	return bt.Add(time.Duration(ticks) * time.Second / clockTicks).UTC()
}

// GroupOf reports the process group of pid and when it started (clock
// ticks since boot), for callers that must find what is left of a process
// group they started, and only that.
func GroupOf(pid int) (pgid int, startTicks uint64, err error) {
	s, err := readStat(pid)
	return s.PGID, s.StartTicks, err
}

// child is a child process of this one, as the shim sees it.
type child struct {
	pid, pgid int
}

// liveChildren lists this process's children that have not exited (zombies
// are left out: they run nothing, and the shim's loop reaps them). It reads
// each thread's children file, cheap whatever the number of processes on
// the machine, and scans /proc where the kernel has no such file.
func liveChildren() []child {
	var pids []int
	tasks, err := os.ReadDir("/proc/self/task")
	ok := err == nil
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat("/proc/self/task/" + t.Name()); serr == nil {
				ok = false // the thread is there, its children file is not
				break
			}
			continue // the thread ended meanwhile
		}
		for _, f := range bytes.Fields(b) {
			if pid, err := strconv.Atoi(string(f)); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	if !ok {
		pids = childrenOf(os.Getpid())
	}
	out := make([]child, 0, len(pids))
	for _, pid := range pids {
		if s, err := readStat(pid); err == nil && s.State != 'Z' {
			out = append(out, child{pid: pid, pgid: s.PGID})
		}
	}
	return out
}

// hasEnv reports whether the environment pid started with holds entry
// ("NAME=value").
func hasEnv(pid int, entry string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	for e := range bytes.SplitSeq(b, []byte{0}) {
		if string(e) == entry {
			return true
		}
	}
	return false
}
