package docker

import (
	"errors"
	"testing"
	"time"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/platformtest"
	"bluegreen/internal/testdocker"
)

// Two servers on one engine may launch the same instance ID; each sees,
// stops and reads only its own container.
func TestTwoOwnersOnOneEngine(t *testing.T) {
	e := testdocker.Shared(t)
	a := newPlatform(t, e, newOwner("server-a"))
	b := newPlatform(t, e, newOwner("server-b"))
	ina := launch(t, a, appSpec(t, e, "same-0", nil))
	inb := launch(t, b, appSpec(t, e, "same-0", nil))
	if ina.Address == inb.Address || ina.PID == inb.PID {
		t.Fatalf("two owners' instances share an address or a process: %+v, %+v", ina, inb)
	}
	launch(t, b, appSpec(t, e, "only-b-0", nil))
	platformtest.WaitServing(t, ina)
	platformtest.WaitServing(t, inb)

	if ins, _ := a.List(testCtx(t), ""); len(ins) != 1 || ins[0].PID != ina.PID {
		t.Errorf("owner a lists %+v, want only its own same-0", ins)
	}
	if err := a.Stop(testCtx(t), "only-b-0", 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := find(t, b, "only-b-0"); !ok {
		t.Errorf("owner a's Stop of b's instance removed it")
	}
	if _, err := a.Logs(testCtx(t), "only-b-0", platform.LogOptions{}); !errors.Is(err, platform.ErrNotFound) {
		t.Errorf("owner a reads b's logs: %v", err)
	}
	if err := b.Stop(testCtx(t), "same-0", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got, ok := find(t, a, "same-0"); !ok || got.State != platform.StateRunning {
		t.Errorf("owner b's Stop touched a's same-0: %+v (listed %v)", got, ok)
	}
	if _, err := platformtest.Get(ina.Address, "/healthz"); err != nil {
		t.Errorf("a's instance stopped answering: %v", err)
	}
}

// A new Platform value of the same owner (a restarted server) knows what
// the last one left: a container that died meanwhile is listed as exited
// with its code and its output, and Launch replaces it.
func TestAdoptionOfADeadContainer(t *testing.T) {
	e := testdocker.Shared(t)
	owner := newOwner("adopt")
	first, err := New(Options{DockerHost: e.Host, Owner: owner})
	if err != nil {
		t.Fatal(err)
	}
	s := appSpec(t, e, "dies-0", map[string]string{"TESTAPP_EXIT_AFTER_MS": "200", "TESTAPP_EXIT_CODE": "9"})
	launch(t, first, s)
	first.Close() // the server goes away

	p := newPlatform(t, e, owner)
	if dead := waitExited(t, p, "dies-0", 9); dead.App != "dock" || dead.Fleet != "blue" || dead.Revision != 1 {
		t.Errorf("the dead instance is listed as %+v, want dock's revision 1, blue", dead)
	}
	if got := readLogs(t, p, "dies-0", 1); got != "exiting with code 9\n" {
		t.Errorf("last line of the dead container: %q", got)
	}
	s.Env["TESTAPP_EXIT_AFTER_MS"] = "600000"
	in := launch(t, p, s)
	if in.State != platform.StateRunning {
		t.Fatalf("Launch of the dead instance: %+v", in)
	}
	platformtest.WaitServing(t, in)
}
