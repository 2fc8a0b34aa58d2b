package process

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/platformtest"
)

func fleetOptions(stateDir string) Options {
	opts := testOptions(stateDir)
	opts.ShimPerFleet = true
	return opts
}

// daemonScript starts, besides the app, a daemon that left the app's
// process group and session but kept its environment, and writes its PID
// and the app's to "pids".
const daemonScript = `echo $$$$ >> pids
( setsid sh -c 'echo $$$$ >> pids; exec sleep 1000' & )
echo ready
exec sleep 1000
`

// TestFleetShimIsShared launches three instances of one fleet and one of
// another: the fleet's three share a shim, the other has its own. Stopping
// one of the three ends it and its daemon and nothing of its siblings;
// after the last, its shim ends too, and a new launch in the fleet starts
// a new one.
func TestFleetShimIsShared(t *testing.T) {
	p := newTestPlatform(t, fleetOptions(t.TempDir()))
	var dirs []string
	var ins []platform.Instance
	for i := range 3 {
		dir := t.TempDir()
		sp := shSpec(fmt.Sprintf("fleet-%d", i), dir, daemonScript)
		sp.Revision = 4
		ins = append(ins, launch(t, p, sp))
		dirs = append(dirs, dir)
	}
	otherSpec := shSpec("other-0", t.TempDir(), "echo ready; exec sleep 1000")
	otherSpec.Revision = 5
	other := launch(t, p, otherSpec)

	recs := make([]record, 3)
	for i, in := range ins {
		rec, err := p.files.readRecord(in.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !rec.ShimShared {
			t.Fatalf("record of %s: not the fleet's shim", in.ID)
		}
		recs[i] = rec
		waitLogs(t, p, in.ID, "ready")
	}
	for _, r := range recs[1:] {
		if r.ShimPID != recs[0].ShimPID {
			t.Fatalf("the fleet's instances have shims %d and %d, want one", recs[0].ShimPID, r.ShimPID)
		}
	}
	otherRec, _ := p.files.readRecord(other.ID)
	if otherRec.ShimPID == recs[0].ShimPID {
		t.Fatalf("an instance of another revision shares the fleet's shim %d", otherRec.ShimPID)
	}
	pidsOf := func(i int) []int {
		var pids []int
		platformtest.Eventually(t, 10*time.Second, func() string {
			if pids = readPids(filepath.Join(dirs[i], "pids")); len(pids) < 2 {
				return fmt.Sprintf("%s started %d of 2 processes", ins[i].ID, len(pids))
			}
			return ""
		})
		return pids
	}

	// One stopped: it and its daemon are gone, its siblings untouched.
	if err := p.Stop(testCtx(t), ins[0].ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pidsOf(0) {
		if pidAlive(pid) {
			t.Errorf("process %d of the stopped instance is still running", pid)
		}
	}
	for i := 1; i < 3; i++ {
		for _, pid := range pidsOf(i) {
			if !pidAlive(pid) {
				t.Errorf("process %d of %s died with its sibling", pid, ins[i].ID)
			}
		}
	}
	if got, _ := findInstance(t, p, ins[1].ID); got.State != platform.StateRunning {
		t.Fatalf("%s is %+v after its sibling's stop", ins[1].ID, got)
	}

	// Then one ends by itself: its exit code is recorded, the shim stays.
	if err := syscall.Kill(ins[1].PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	platformtest.Eventually(t, 10*time.Second, func() string {
		if got, _ := findInstance(t, p, ins[1].ID); got.State != platform.StateExited || got.ExitCode != 128+int(syscall.SIGTERM) {
			return fmt.Sprintf("%s is %+v, want exited by SIGTERM", ins[1].ID, got)
		}
		return ""
	})
	if !alive(recs[0].ShimPID, recs[0].ShimStartTicks) {
		t.Fatal("the fleet's shim ended while an instance still ran")
	}

	// The last one stopped: the shim ends.
	for _, in := range ins[1:] {
		if err := p.Stop(testCtx(t), in.ID, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	platformtest.Eventually(t, 10*time.Second, func() string {
		if alive(recs[0].ShimPID, recs[0].ShimStartTicks) {
			return "the fleet's shim outlived its last instance"
		}
		return ""
	})

	// A new instance of the fleet gets a new shim.
	sp := shSpec("fleet-3", t.TempDir(), "echo ready; exec sleep 1000")
	sp.Revision = 4
	in := launch(t, p, sp)
	rec, _ := p.files.readRecord(in.ID)
	if rec.ShimPID == recs[0].ShimPID || !alive(rec.ShimPID, rec.ShimStartTicks) {
		t.Fatalf("the new instance's shim is %d (the old one was %d)", rec.ShimPID, recs[0].ShimPID)
	}
	if err := p.Stop(testCtx(t), in.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestFleetShimEndsWhatItCannotTell: a daemon that left its app's group
// and cleared its environment can no longer be told from the fleet's other
// instances' processes; it is killed when the fleet's shim ends.
func TestFleetShimEndsWhatItCannotTell(t *testing.T) {
	p := newTestPlatform(t, fleetOptions(t.TempDir()))
	dir := t.TempDir()
	in := launch(t, p, shSpec("hidden-0", dir,
		"( setsid env -i sh -c 'echo $$$$ >> pids; exec sleep 1000' & )\necho ready\nexec sleep 1000\n"))
	rec, _ := p.files.readRecord(in.ID)
	var daemon int
	platformtest.Eventually(t, 10*time.Second, func() string {
		if pids := readPids(filepath.Join(dir, "pids")); len(pids) > 0 {
			daemon = pids[0]
			return ""
		}
		return "the daemon did not start"
	})
	t.Cleanup(func() {
		if pidAlive(daemon) {
			syscall.Kill(daemon, syscall.SIGKILL)
		}
	})
	if err := p.Stop(testCtx(t), in.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	platformtest.Eventually(t, 10*time.Second, func() string {
		if alive(rec.ShimPID, rec.ShimStartTicks) {
			return "the fleet's shim outlived its last instance"
		}
		if pidAlive(daemon) {
			return fmt.Sprintf("the daemon %d outlived the fleet's shim", daemon)
		}
		return ""
	})
}

// TestFleetShimAfterServerKill9 launches two instances of a fleet from a
// server process, kills that server with SIGKILL, and checks that a new
// Platform on the same state directory puts a third instance of the fleet
// on the same shim and stops all three through it.
func TestFleetShimAfterServerKill9(t *testing.T) {
	state := t.TempDir()
	var ins []platform.Instance
	for i := range 2 {
		ins = append(ins, launchFromServer(t, state, appSpec(t, fmt.Sprintf("k9fleet-%d", i), nil), true))
	}
	p := newTestPlatform(t, fleetOptions(state))
	third := launch(t, p, appSpec(t, "k9fleet-2", nil))
	ins = append(ins, third)
	var shim int
	for _, in := range ins {
		platformtest.WaitServing(t, in)
		rec, err := p.files.readRecord(in.ID)
		if err != nil {
			t.Fatal(err)
		}
		if shim == 0 {
			shim = rec.ShimPID
		}
		if rec.ShimPID != shim {
			t.Fatalf("%s has shim %d, want the fleet's %d", in.ID, rec.ShimPID, shim)
		}
	}
	for _, in := range ins {
		if err := p.Stop(testCtx(t), in.ID, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if pidAlive(in.PID) {
			t.Errorf("%s (pid %d) still runs after Stop", in.ID, in.PID)
		}
	}
}

// TestFleetShimAnswersOnlyItsUser connects to a fleet's shim as another
// user, as an app running as its own user would: the shim closes the
// connection without reading a request, and its instance runs on.
func TestFleetShimAnswersOnlyItsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test runs as root (it connects as another user)")
	}
	p := newTestPlatform(t, fleetOptions(t.TempDir()))
	in := launch(t, p, appSpec(t, "peer-0", nil))
	platformtest.WaitServing(t, in)
	rec, _ := p.files.readRecord(in.ID)
	req, _ := json.Marshal(shimRequest{Kill: rec.ID})
	// A copy of this test binary that the other user may run.
	dir, err := os.MkdirTemp("", "ask-shim")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	asker := filepath.Join(dir, "asker")
	if err := os.WriteFile(asker, self, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(asker, "ask-shim", strconv.Itoa(rec.ShimPID), strconv.FormatUint(rec.ShimStartTicks, 10), string(req))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	// Closed unread: the request's write or the answer's read fails.
	if err == nil || !(strings.Contains(string(out), "EOF") || strings.Contains(string(out), "broken pipe") || strings.Contains(string(out), "reset")) {
		t.Fatalf("another user's request was answered: %v\n%s", err, out)
	}
	platformtest.WaitServing(t, in)
	// The server's own user is answered.
	cmd = exec.Command(os.Args[0], "ask-shim", strconv.Itoa(rec.ShimPID), strconv.FormatUint(rec.ShimStartTicks, 10), `{"stop":"peer-0"}`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the server's user was refused: %v\n%s", err, out)
	}
	platformtest.Eventually(t, 10*time.Second, func() string {
		if got, _ := findInstance(t, p, in.ID); got.State != platform.StateExited {
			return fmt.Sprintf("%s is %+v after a stop request", in.ID, got)
		}
		return ""
	})
}

// runAskShim is "ask-shim PID TICKS REQUEST-JSON": it sends a request to a
// fleet's shim as whoever runs it and prints the answer.
func runAskShim(args []string) int {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: ask-shim PID TICKS REQUEST-JSON")
		return 2
	}
	pid, _ := strconv.Atoi(args[0])
	ticks, _ := strconv.ParseUint(args[1], 10, 64)
	var req shimRequest
	if err := json.Unmarshal([]byte(args[2]), &req); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var answer shimAnswer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := askShim(ctx, pid, ticks, req, &answer); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("%+v\n", answer)
	return 0
}

// TestUnansweredLaunchKeepsItsPort: a fleet's shim that takes a launch but
// does not answer in time may still start the app on the port it was given.
// The port stays promised until the shim's record of the instance appears,
// and then the record holds it. The shim here is the test itself, on the
// socket a shim of its PID and start time would have.
func TestUnansweredLaunchKeepsItsPort(t *testing.T) {
	state := t.TempDir()
	self, err := readStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	files := layout{state}
	os.MkdirAll(files.instancesDir(), 0o700)
	sibling := record{ID: "slow-0", App: "proc", Fleet: "blue", Host: "127.0.0.1", Port: 1,
		PID: os.Getpid(), StartTicks: self.StartTicks, ShimPID: os.Getpid(), ShimStartTicks: self.StartTicks,
		ShimShared: true, StopSignal: "SIGTERM"}
	if err := writeJSON(files.recordPath(sibling.ID), sibling); err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: shimSocketName(os.Getpid(), self.StartTicks), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan shimConfig, 1)
	go func() {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		var req shimRequest
		if json.NewDecoder(c).Decode(&req) == nil && req.Launch != nil {
			got <- *req.Launch
		}
		io.Copy(io.Discard, c) // no answer, until the platform hangs up
	}()

	opts := fleetOptions(state)
	opts.StartTimeout = 300 * time.Millisecond
	p := newTestPlatform(t, opts)
	sp := shSpec("slow-1", t.TempDir(), "exec sleep 1000")
	if _, err := p.Launch(testCtx(t), sp); err == nil || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("Launch = %v, want no answer from the fleet's shim", err)
	}
	c := <-got
	port := c.Record.Port
	if !p.ports.Reserved(port) {
		t.Fatalf("port %d, given to the unanswered launch, is free to hand out again", port)
	}

	// The shim starts the app after all: its record shows up and holds the port.
	rec := c.Record
	rec.PID, rec.StartTicks, rec.ShimPID, rec.ShimStartTicks, rec.ShimShared = os.Getpid(), self.StartTicks, os.Getpid(), self.StartTicks, true
	if err := writeJSON(c.RecordPath, rec); err != nil {
		t.Fatal(err)
	}
	platformtest.Eventually(t, 10*time.Second, func() string {
		p.mu.Lock()
		defer p.mu.Unlock()
		if !p.portsHeld[port] || p.ports.Reserved(port) {
			return fmt.Sprintf("port %d: held by a record %v, still promised %v", port, p.portsHeld[port], p.ports.Reserved(port))
		}
		return ""
	})
	if in, ok := findInstance(t, p, "slow-1"); !ok || in.State != platform.StateRunning {
		t.Fatalf("the instance the shim started late is %+v (listed %v)", in, ok)
	}
}
