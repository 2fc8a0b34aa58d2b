package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"bluegreen/internal/testdocker"
	"bluegreen/internal/testwait"
)

// gate is a hook that waits until the test opens it: a file named after
// the lifecycle event appears in dir.
func gateHook(dir string) string {
	return fmt.Sprintf("#!/bin/sh\nwhile [ ! -e %q/\"$BG_LIFECYCLE_EVENT\" ]; do sleep 0.05; done\necho gate $BG_LIFECYCLE_EVENT open\n", dir)
}

func openGate(t *testing.T, dir, event string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, event), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// processes lists the live processes for which match, given the process's
// /proc directory, is true.
func processes(t *testing.T, match func(dir string) bool) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", ent.Name())
		if st, err := os.ReadFile(filepath.Join(dir, "stat")); err != nil {
			continue
		} else if i := strings.LastIndexByte(string(st), ')'); i > 0 && len(st) > i+2 && st[i+2] == 'Z' {
			continue // exited, waiting to be reaped
		}
		if match(dir) {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids
}

// appProcesses lists the processes whose executable lies in the data
// directory: the instances, and nothing else.
func appProcesses(t *testing.T, data string) []int {
	return processes(t, func(dir string) bool {
		exe, err := os.Readlink(filepath.Join(dir, "exe"))
		return err == nil && strings.HasPrefix(exe, data+string(filepath.Separator))
	})
}

// hookProcesses lists processes named name whose working directory lies in
// the data directory (hooks run in their revision's directory).
func hookProcesses(t *testing.T, data, name string) []int {
	return processes(t, func(dir string) bool {
		comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
		cwd, _ := os.Readlink(filepath.Join(dir, "cwd"))
		return strings.TrimSpace(string(comm)) == name && strings.HasPrefix(cwd, data+string(filepath.Separator))
	})
}

// checkInstances checks that every running app process (or container) is
// a listed instance, and that no instance is there twice.
func (e *deployEnv) checkInstances(when string) {
	t := e.t
	t.Helper()
	if e.docker != nil {
		e.checkContainers(when)
		return
	}
	if e.kube != nil {
		e.checkPods(when)
		return
	}
	var listed []int
	seen := map[string]string{}
	for _, in := range e.instances() {
		if in.State != "running" {
			continue
		}
		key := fmt.Sprintf("revision %d %s %s#%s", in.Revision, in.Fleet, in.Service, in.ID[strings.LastIndexByte(in.ID, '-')+1:])
		if other, dup := seen[key]; dup {
			t.Fatalf("%s: %s runs twice: %s and %s", when, key, other, in.ID)
		}
		seen[key] = in.ID
		listed = append(listed, in.PID)
	}
	sort.Ints(listed)
	var procs []int
	testwait.For(t, 10*time.Second, when+": app processes to match the instances", func() bool {
		procs = appProcesses(t, e.data)
		return fmt.Sprint(procs) == fmt.Sprint(listed)
	})
}

// routerPID is the pid of the router process the server runs.
func (e *deployEnv) routerPID() string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.data, "router", "router.pid"))
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// restart kills the server with SIGKILL and starts it again: the router
// and the instances are adopted, not restarted.
func (e *deployEnv) restart(id, phase string) {
	e.t.Helper()
	router := e.routerPID()
	before := e.units()
	e.killServer()
	e.startServer()
	if now := e.routerPID(); now != router {
		e.t.Fatalf("the router was restarted with the server: pid %s, then %s", router, now)
	}
	after := map[string]bool{}
	for _, u := range e.units() {
		after[u] = true
	}
	for _, u := range before {
		if !after[u] && phase != "Retiring" && phase != "RollingBack" {
			e.t.Fatalf("instance %s is gone after the server restarted in %s", u, phase)
		}
	}
	d, err := e.api.Deployment(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	if d.Phase != phase {
		e.t.Fatalf("after the restart the deployment is %s, want %s", d.Phase, phase)
	}
	e.checkInstances("after a kill in " + phase)
	e.t.Logf("killed and restarted the server in %s", phase)
}

// units names what runs the app's instances on the machine: the instance
// processes, or the server's containers.
func (e *deployEnv) units() []string {
	e.t.Helper()
	if e.docker != nil {
		return e.containerIDs()
	}
	if e.kube != nil {
		return e.podUIDs()
	}
	var out []string
	for _, pid := range appProcesses(e.t, e.data) {
		out = append(out, strconv.Itoa(pid))
	}
	return out
}

// killUnit kills what runs one instance, as a crash would.
func (e *deployEnv) killUnit(u string) {
	e.t.Helper()
	if e.docker != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := e.docker.Client(e.t).ContainerKill(ctx, u, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
			e.t.Fatal(err)
		}
		return
	}
	if e.kube != nil {
		e.killPod(u)
		return
	}
	pid, _ := strconv.Atoi(u)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		e.t.Fatal(err)
	}
}

func TestServerKilledInEachPhase(t *testing.T) {
	serverKilledInEachPhase(t, newRaceDeployEnv(t))
}

// The same with containers: the engine's containers equal the listed
// instances after every kill.
func TestServerKilledInEachPhaseDocker(t *testing.T) {
	eng := testdocker.Shared(t)
	helloImages(t, eng)
	serverKilledInEachPhase(t, newDockerEnv(t, bin.bluegreenRace, eng, "hello:latest"))
}

// The same with pods: the cluster's pods equal the listed instances after
// every kill.
func TestServerKilledInEachPhaseKubernetes(t *testing.T) {
	e := newKubeEnv(t, bin.bluegreenRace)
	helloPodImages(t, e.kube)
	serverKilledInEachPhase(t, e)
}

// The same with a shim per fleet (server --shim-per fleet): one shim
// watches every instance of a fleet, through every kill, and the live
// fleet's two instances (one of them a replacement) end under one shim.
func TestServerKilledInEachPhaseShimPerFleet(t *testing.T) {
	e := startDeployEnv(t, bin.bluegreenRace, func(e *deployEnv) { e.args = append(e.args, "--shim-per", "fleet") })
	serverKilledInEachPhase(t, e)
	parents := map[int]bool{}
	for _, u := range e.units() {
		pid, _ := strconv.Atoi(u)
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
		ppid, _ := strconv.Atoi(f[1])
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ppid))
		if !strings.Contains(string(cmd), "instance-shim") {
			t.Fatalf("the parent %d of instance process %d is %q, not a shim", ppid, pid, cmd)
		}
		parents[ppid] = true
	}
	if len(parents) != 1 {
		t.Fatalf("the live fleet's instances have shims %v, want one", parents)
	}
}

func serverKilledInEachPhase(t *testing.T, e *deployEnv) {
	ctx := context.Background()
	gates := t.TempDir()
	e.deployLive("v1", e.specFor(quick))
	l := startLoad(t, "http://"+e.prod+"/", 200)

	gated := "hooks:\n" +
		"  before_install: [{ run: ./hooks/gate.sh, timeout: 1m }]\n" +
		"  validate_service: [{ run: ./hooks/gate.sh, timeout: 1m }]\n" +
		"  after_allow_test_traffic: [{ run: ./hooks/gate.sh, timeout: 1m }]\n" +
		"  on_rollback: [{ run: ./hooks/gate.sh, timeout: 1m }]\n" +
		"strategy:\n  approval: manual\n  steps:\n    - { weight: 50, pause: {} }\n    - { weight: 100 }\n" +
		"bake: 3s\nretire:\n  keep_blue: 3s\n  drain_timeout: 2s\n"
	files := map[string]string{"hooks/gate.sh": gateHook(gates)}

	d := e.deploy("v2", e.specFor(gated), files)
	steps := []struct {
		phase string
		then  func()
	}{
		{"Provisioning", func() { openGate(t, gates, "before_install") }},
		{"Validating", func() { openGate(t, gates, "validate_service") }},
		{"TestTraffic", func() { openGate(t, gates, "after_allow_test_traffic") }},
		{"AwaitingApproval", func() {
			if _, err := e.api.Promote(ctx, "shop", false); err != nil {
				t.Fatal(err)
			}
		}},
		{"Shifting", func() {
			testwait.For(t, 10*time.Second, "green at 50%", func() bool {
				d, _ := e.api.Deployment(ctx, d.ID)
				return detailsOf(t, d).Weight == 50
			})
			e.restart(d.ID, "Shifting") // once more, with traffic split
			if _, err := e.api.Promote(ctx, "shop", false); err != nil {
				t.Fatal(err)
			}
		}},
		{"Baking", func() {}},
		{"Retiring", func() {}},
	}
	for _, s := range steps {
		e.waitPhase(d.ID, 30*time.Second, s.phase)
		e.restart(d.ID, s.phase)
		s.then()
	}
	if d = e.waitEnd(d.ID, 60*time.Second); d.Outcome != "succeeded" {
		t.Fatalf("v2: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	e.checkInstances("after v2 succeeded")

	// A rollback interrupted: kill the server while on_rollback runs.
	d = e.deploy("v3", e.specFor(gated), files)
	e.waitPhase(d.ID, 30*time.Second, "AwaitingApproval")
	if _, err := e.api.Promote(ctx, "shop", false); err != nil {
		t.Fatal(err)
	}
	e.waitPhase(d.ID, 30*time.Second, "Shifting")
	if _, err := e.api.Abort(ctx, "shop", "interrupted rollback"); err != nil {
		t.Fatal(err)
	}
	e.waitPhase(d.ID, 30*time.Second, "RollingBack")
	e.restart(d.ID, "RollingBack")
	openGate(t, gates, "on_rollback")
	if d = e.waitEnd(d.ID, 60*time.Second); d.Outcome != "rolled_back" {
		t.Fatalf("v3: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	e.checkInstances("after v3 rolled back")
	if app, _ := e.api.App(ctx, "shop"); app.LiveRevision != 2 || len(e.instances()) != 2 {
		t.Fatalf("after everything: live revision %d with %d instances; want 2 with 2", app.LiveRevision, len(e.instances()))
	}
	// An instance that died while the server was down is replaced when it
	// comes back; the others are adopted as they are.
	live := e.units()
	e.killServer()
	e.killUnit(live[0])
	e.startServer()
	testwait.For(t, 30*time.Second, "the dead instance to be replaced", func() bool {
		now := e.units()
		return len(now) == 2 && now[0] != live[0] && now[1] != live[0]
	})
	e.checkInstances("after an instance died while the server was down")
	replaced := false
	for _, ev := range e.appEvents() {
		replaced = replaced || ev.Kind == "instance.replaced"
	}
	if !replaced {
		t.Fatal("no instance.replaced event")
	}

	recs := l.stop()
	if f := failures(recs); len(f) > 0 {
		t.Fatalf("%d of %d requests failed across the server kills: %s\nbgload: %s", len(f), len(recs), summary(f), l.out.String())
	}
	t.Logf("%s, 0 failed across 10 server kills", summary(recs))
}
