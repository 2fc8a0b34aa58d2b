package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one process the benchmark started, in its own process group so that
// stopping it also stops whatever it forked (nginx workers).
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// procSet owns every process started by the run and records their process
// groups in a file, so run.sh can kill them even if this program dies.
type procSet struct {
	pidFile string
	procs   []*proc
}

func (s *procSet) start(name, logPath string, argv ...string) (*proc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Pdeathsig covers a crash of this program; Setpgid lets stop reach children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	s.procs = append(s.procs, p)
	s.writePidFile()
	return p, nil
}

func (s *procSet) writePidFile() {
	var b strings.Builder
	for _, p := range s.procs {
		fmt.Fprintln(&b, p.cmd.Process.Pid)
	}
	os.WriteFile(s.pidFile, []byte(b.String()), 0o644)
}

// stopAll stops every process, newest first, and removes the pid file.
func (s *procSet) stopAll() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].stop()
	}
	s.procs = nil
	os.Remove(s.pidFile)
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after a grace period.
func (p *proc) stop() {
	pgid := p.pid()
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
		}
	}
	// Leftover children (a worker whose master already exited) go too.
	syscall.Kill(-pgid, syscall.SIGKILL)
}

// tail returns the last lines of the process's log, for error messages.
func (p *proc) tail() string {
	data, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, " | ")
}

// waitReady polls url until it answers 200 with the backend's body, the
// process exits, or the deadline passes.
func waitReady(ctx context.Context, p *proc, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(timeout)
	var last error
	for attempt := 0; time.Now().Before(deadline) && attempt < 1000; attempt++ {
		if p != nil && !p.running() {
			return fmt.Errorf("%s exited (%v): %s", p.name, p.waitErr, p.tail())
		}
		last = probe(ctx, client, url)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if p != nil && !p.running() {
		return fmt.Errorf("%s exited (%v): %s", p.name, p.waitErr, p.tail())
	}
	return fmt.Errorf("not ready after %s: %v", timeout, last)
}

func probe(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(buf.String(), "hello from bench backend") {
		return fmt.Errorf("status %d, body %.80q", resp.StatusCode, buf.String())
	}
	return nil
}

// freePorts reserves n distinct loopback ports by holding listeners open
// until all are chosen, then releases them for the processes to bind.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat.
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && v > 0 {
			return float64(v)
		}
	}
	return 100
}

// treeTicks returns utime+stime (in clock ticks) of root and every descendant,
// keyed by pid. Threads are included: /proc/PID/stat sums a process's threads.
func treeTicks(root int) (map[int]uint64, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	ticks := map[int]uint64{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, t, err := readStat(pid)
		if err != nil {
			continue // exited while listing
		}
		children[ppid] = append(children[ppid], pid)
		ticks[pid] = t
	}
	if _, ok := ticks[root]; !ok {
		return nil, fmt.Errorf("process %d not found", root)
	}
	tree := map[int]uint64{}
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		tree[pid] = ticks[pid]
		queue = append(queue, children[pid]...)
	}
	return tree, nil
}

func readStat(pid int) (ppid int, ticks uint64, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseStat(string(data))
}

// parseStat reads ppid, utime and stime from a /proc/PID/stat line. The command
// name is in parentheses and may contain spaces, so fields count from the last ')'.
func parseStat(line string) (ppid int, ticks uint64, err error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, 0, errors.New("malformed stat")
	}
	f := strings.Fields(line[i+1:])
	if len(f) < 13 {
		return 0, 0, errors.New("short stat")
	}
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, err
	}
	utime, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, 0, err
	}
	stime, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, 0, err
	}
	return ppid, utime + stime, nil
}

// ticksDelta is the CPU a process tree used between two snapshots. A process
// that appeared in between counts from zero.
func ticksDelta(before, after map[int]uint64) uint64 {
	var sum uint64
	for pid, t := range after {
		if b, ok := before[pid]; ok && b <= t {
			sum += t - b
		} else if !ok {
			sum += t
		}
	}
	return sum
}

// machineBusyTicks is the CPU time all processes of the machine have used
// (user, nice and system in /proc/stat), in clock ticks.
func machineBusyTicks() (uint64, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 4 || f[0] != "cpu" {
		return 0, errors.New("unexpected /proc/stat")
	}
	var sum uint64
	for _, s := range f[1:4] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}
