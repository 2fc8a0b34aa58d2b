package process

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/platformtest"
)

// runTestServer is a stand-in bluegreen server, run as "test-server
// STATEDIR SPEC-JSON [per-fleet]" by the test binary: it launches the
// instance, prints it as JSON and waits to be killed.
func runTestServer(args []string) int {
	var sp platform.InstanceSpec
	if len(args) < 2 || len(args) > 3 || json.Unmarshal([]byte(args[1]), &sp) != nil {
		fmt.Fprintln(os.Stderr, "usage: test-server STATEDIR SPEC-JSON [per-fleet]")
		return 2
	}
	opts := testOptions(args[0])
	opts.ShimPerFleet = len(args) == 3 && args[2] == "per-fleet"
	p, err := New(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	in, err := p.Launch(context.Background(), sp)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(in)
	io.Copy(io.Discard, os.Stdin) // until the test closes it, or kills this process
	return 0
}

// launchFromServer launches sp from a stand-in server process over state,
// waits for the instance to serve, then kills that server with SIGKILL.
func launchFromServer(t *testing.T, state string, sp platform.InstanceSpec, perFleet bool) platform.Instance {
	t.Helper()
	spJSON, _ := json.Marshal(sp)
	args := []string{"test-server", state, string(spJSON)}
	if perFleet {
		args = append(args, "per-fleet")
	}
	server := exec.Command(os.Args[0], args...)
	server.Stderr = os.Stderr
	stdin, _ := server.StdinPipe()
	stdout, _ := server.StdoutPipe()
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if rec, err := (layout{state}).readRecord(sp.ID); err == nil {
			killRecord(rec)
		}
	})
	defer func() {
		stdin.Close()
		server.Process.Signal(syscall.SIGKILL)
		server.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("the server did not launch the instance: %v", err)
	}
	var in platform.Instance
	if err := json.Unmarshal([]byte(line), &in); err != nil {
		t.Fatal(err)
	}
	platformtest.WaitServing(t, in)
	return in
}

// TestAdoptAfterServerKill9 launches an instance from a server process,
// kills that server with SIGKILL, and checks that a new Platform on the same
// state directory adopts the instance: same process, output still captured,
// Logs and Stop working.
func TestAdoptAfterServerKill9(t *testing.T) {
	state := t.TempDir()
	in := launchFromServer(t, state, appSpec(t, "k9-0", nil), false)
	platformtest.WaitServing(t, in)
	// The app lives on, and its output still reaches the log.
	if _, err := platformtest.Get(in.Address, "/print?n=2&tag=orphaned"); err != nil {
		t.Fatalf("the instance died with its server: %v", err)
	}

	p := newTestPlatform(t, testOptions(state))
	got, ok := findInstance(t, p, in.ID)
	if !ok || got.State != platform.StateRunning || got.PID != in.PID || !got.StartedAt.Equal(in.StartedAt) || got.Address != in.Address {
		t.Fatalf("after the server's kill -9, a new platform lists %+v (found %v), want %+v running", got, ok, in)
	}
	waitLogs(t, p, in.ID, "orphaned line 2")
	if logs := readLogs(t, p, in.ID, 0); !strings.Contains(logs, "testapp listening on") {
		t.Errorf("the rebuilt logs lack the start line:\n%s", logs)
	}
	if _, err := platformtest.Get(in.Address, "/print?n=1&tag=adopted"); err != nil {
		t.Fatal(err)
	}
	waitLogs(t, p, in.ID, "adopted line 1")

	rec, err := p.files.readRecord(in.ID)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.Stop(testCtx(t), in.ID, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("stopping the adopted instance took %v: the stop signal did not reach it", time.Since(start))
	}
	if pidAlive(rec.PID) || pidAlive(rec.ShimPID) || len(groupMembers(rec.PID)) > 0 {
		t.Errorf("the adopted instance's processes outlived Stop")
	}
	if _, ok := findInstance(t, p, in.ID); ok {
		t.Errorf("the stopped instance is still listed")
	}
	// The output, including the app's goodbye, stays readable from the files.
	if logs := readLogs(t, p, in.ID, 0); !strings.Contains(logs, "stopping on SIGTERM") {
		t.Errorf("logs after Stop lack the app's goodbye:\n%s", logs)
	}
}
