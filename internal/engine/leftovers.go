package engine

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"bluegreen/internal/platform/process"
)

// Hooks run in their own process groups. A server killed while a hook runs
// cannot kill the group itself (Pdeathsig reaches only the shell, not what
// it started), so each running group is recorded in a file named by its
// ID, holding its leader's start time, and a starting engine kills what is
// left of the groups so recorded. Only processes of that group that started
// no earlier than its leader are killed, so a reused ID spares strangers.

// hooksDir is where running hook groups are recorded.
func (e *Engine) hooksDir() string { return filepath.Join(e.opts.RevisionsDir, ".hooks") }

// trackGroup records the running group pgid; the returned func forgets it.
func (e *Engine) trackGroup(pgid int) func() {
	_, ticks, err := process.GroupOf(pgid)
	if err != nil {
		return func() {}
	}
	dir := e.hooksDir()
	path := filepath.Join(dir, strconv.Itoa(pgid))
	if err := os.MkdirAll(dir, 0o700); err == nil {
		err = os.WriteFile(path, []byte(strconv.FormatUint(ticks, 10)), 0o600)
		if err != nil {
			e.log.Warn("recording a hook's process group", "pgid", pgid, "err", err)
		}
	}
	return func() { _ = os.Remove(path) }
}

// killLeftoverGroups kills what remains of the hook groups a previous
// server left running, and forgets them.
func (e *Engine) killLeftoverGroups() {
	dir := e.hooksDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, ent := range ents {
		path := filepath.Join(dir, ent.Name())
		pgid, err1 := strconv.Atoi(ent.Name())
		b, err2 := os.ReadFile(path)
		ticks, err3 := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err1 == nil && err2 == nil && err3 == nil && pgid > 1 {
			if n := killGroupSince(pgid, ticks); n > 0 {
				e.log.Info("killed what a hook left running when the server stopped", "pgid", pgid, "processes", n)
			}
		}
		_ = os.Remove(path)
	}
}

// killGroupSince kills the processes of group pgid that started at ticks
// or later, and says how many there were.
func killGroupSince(pgid int, ticks uint64) int {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		g, start, err := process.GroupOf(pid)
		if err != nil || g != pgid || start < ticks {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}
