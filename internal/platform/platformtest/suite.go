package platformtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"bluegreen/internal/platform"
)

// Run runs the conformance suite against the platform c describes.
func Run(t *testing.T, c Config) {
	tests := []struct {
		name string
		fn   func(*suite)
	}{
		{"LaunchServes", testLaunchServes},
		{"Environment", testEnvironment},
		{"UnsetVariable", testUnsetVariable},
		{"LaunchIdempotent", testLaunchIdempotent},
		{"ExitReported", testExitReported},
		{"StopGraceful", testStopGraceful},
		{"StopSignal", testStopSignal},
		{"StopForced", testStopForced},
		{"StopUnknown", testStopUnknown},
		{"LogsTail", testLogsTail},
		{"LogsFollow", testLogsFollow},
		{"Adopt", testAdopt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "Adopt" && !c.Adopts {
				t.Skip("the platform does not adopt instances")
			}
			tc.fn(newSuite(t, c))
		})
	}
}

func testLaunchServes(s *suite) {
	const n = 3
	addrs := map[string]bool{}
	for i := range n {
		id := fmt.Sprintf("serve-%d", i)
		sp := s.spec(id, i, nil)
		if i == 1 {
			sp.Service = "api" // an instance of a stack's service keeps its service
		}
		in := s.launch(sp)
		if in.ID != id || in.App != "suite" || in.Revision != 3 || in.Fleet != "green" || in.Index != i || in.Service != sp.Service {
			s.t.Errorf("Launch returned %+v, want the identity of %s", in, id)
		}
		if in.State != platform.StateRunning {
			s.t.Errorf("%s: state %s after Launch, want running", id, in.State)
		}
		if addrs[in.Address] {
			s.t.Errorf("%s: address %s given twice", id, in.Address)
		}
		addrs[in.Address] = true
		if v := WaitServing(s.t, in); v.Env["BG_INSTANCE"] != id {
			s.t.Errorf("%s at %s answered as %q", id, in.Address, v.Env["BG_INSTANCE"])
		}
	}
	ins, err := s.p.List(s.ctx, "suite")
	if err != nil {
		s.t.Fatal(err)
	}
	if len(ins) != n {
		s.t.Fatalf("List(suite) = %d instances, want %d: %+v", len(ins), n, ins)
	}
	for i, in := range ins {
		if i == 1 && in.Service != "api" {
			s.t.Errorf("List[1] has service %q, want api", in.Service)
		}
		if want := fmt.Sprintf("serve-%d", i); in.ID != want || in.State != platform.StateRunning {
			s.t.Errorf("List[%d] = %s %s, want %s running", i, in.ID, in.State, want)
		}
	}
	if other, _ := s.p.List(s.ctx, "another-app"); len(other) != 0 {
		s.t.Errorf("List(another-app) = %+v, want none", other)
	}
}

func testEnvironment(s *suite) {
	sp := s.spec("env-0", 0, map[string]string{"GREETING": "hello ${PARAM_COLOR} on ${PORT}, $$5"})
	sp.Command = append(sp.Command, "--name=${BG_INSTANCE}", "--port=${PORT}")
	in := s.launch(sp)
	v := WaitServing(s.t, in)
	_, port, _ := net.SplitHostPort(in.Address)
	want := map[string]string{
		"PORT": port, "BG_APP": "suite", "BG_REVISION": "3", "BG_FLEET": "green",
		"BG_INSTANCE": "env-0", "PARAM_COLOR": "teal", "GREETING": "hello teal on " + port + ", $5",
	}
	for k, w := range want {
		if v.Env[k] != w {
			s.t.Errorf("instance env %s = %q, want %q", k, v.Env[k], w)
		}
	}
	args := strings.Join(v.Args, " ")
	if !strings.Contains(args, "--name=env-0 --port="+port) {
		s.t.Errorf("instance args %q lack the expanded --name and --port", args)
	}
}

func testUnsetVariable(s *suite) {
	sp := s.spec("unset-0", 0, map[string]string{"X": "${NO_SUCH_VARIABLE_ANYWHERE}"})
	_, err := s.p.Launch(s.ctx, sp)
	if err == nil || !strings.Contains(err.Error(), "NO_SUCH_VARIABLE_ANYWHERE") || !strings.Contains(err.Error(), "unset-0") {
		s.t.Fatalf("Launch with an unset variable: %v, want an error naming the variable and the instance", err)
	}
	if _, ok := s.find(s.p, "unset-0"); ok {
		s.t.Errorf("a failed Launch left an instance behind")
	}
}

func testLaunchIdempotent(s *suite) {
	sp := s.spec("same-0", 0, nil)
	first := s.launch(sp)
	WaitServing(s.t, first)
	again := s.launch(sp)
	if again.PID != first.PID || again.Address != first.Address || !again.StartedAt.Equal(first.StartedAt) {
		s.t.Errorf("second Launch = %+v, want the running %+v", again, first)
	}
	if ins, _ := s.p.List(s.ctx, ""); len(ins) != 1 {
		s.t.Errorf("List after two launches of one ID = %+v, want one instance", ins)
	}
}

func testExitReported(s *suite) {
	sp := s.spec("exit-0", 0, map[string]string{"TESTAPP_EXIT_AFTER_MS": "300", "TESTAPP_EXIT_CODE": "7"})
	in := s.launch(sp)
	if in.State != platform.StateRunning {
		s.t.Errorf("state %s right after Launch, want running", in.State)
	}
	Eventually(s.t, 10*time.Second, func() string {
		got, ok := s.find(s.p, in.ID)
		if !ok || got.State != platform.StateExited || got.ExitCode != 7 {
			return fmt.Sprintf("instance is %+v (listed: %v), want exited with code 7", got, ok)
		}
		return ""
	})
	s.waitLog(s.p, in.ID, "exiting with code 7")
	// Launching an exited instance starts it again.
	sp.Env["TESTAPP_EXIT_AFTER_MS"] = "600000"
	again := s.launch(sp)
	if again.State != platform.StateRunning {
		s.t.Fatalf("relaunch of an exited instance: state %s", again.State)
	}
	WaitServing(s.t, again)
}

// stopAndRead stops the instance while following its logs and returns the
// output seen up to the end, and how long Stop took.
func (s *suite) stopAndRead(id string, grace time.Duration) (string, time.Duration) {
	s.t.Helper()
	r, err := s.p.Logs(s.ctx, id, platform.LogOptions{Follow: true})
	if err != nil {
		s.t.Fatalf("Logs: %v", err)
	}
	defer r.Close()
	out := make(chan string, 1)
	go func() { b, _ := io.ReadAll(r); out <- string(b) }()
	start := time.Now()
	if err := s.p.Stop(s.ctx, id, grace); err != nil {
		s.t.Fatalf("Stop: %v", err)
	}
	took := time.Since(start)
	select {
	case got := <-out:
		return got, took
	case <-time.After(10 * time.Second):
		s.t.Fatalf("following the logs did not end after Stop")
	}
	return "", took
}

func (s *suite) checkGone(in platform.Instance) {
	s.t.Helper()
	if got, ok := s.find(s.p, in.ID); ok {
		s.t.Errorf("after Stop, List still has %+v", got)
	}
	if _, err := Get(in.Address, "/healthz"); err == nil {
		s.t.Errorf("after Stop, %s still answers", in.Address)
	}
}

func testStopGraceful(s *suite) {
	in := s.launch(s.spec("graceful-0", 0, nil))
	WaitServing(s.t, in)
	out, took := s.stopAndRead(in.ID, 10*time.Second)
	if !strings.Contains(out, "stopping on SIGTERM") || !strings.Contains(out, "stopped") {
		s.t.Errorf("the app did not log a clean stop on SIGTERM:\n%s", out)
	}
	if took > 5*time.Second {
		s.t.Errorf("a graceful Stop took %v", took)
	}
	s.checkGone(in)
}

func testStopSignal(s *suite) {
	sp := s.spec("signal-0", 0, nil)
	sp.StopSignal = "SIGUSR1"
	in := s.launch(sp)
	WaitServing(s.t, in)
	out, _ := s.stopAndRead(in.ID, 10*time.Second)
	if !strings.Contains(out, "stopping on SIGUSR1") {
		s.t.Errorf("the app was not stopped with its stop signal SIGUSR1:\n%s", out)
	}
	s.checkGone(in)
}

func testStopForced(s *suite) {
	in := s.launch(s.spec("forced-0", 0, map[string]string{"TESTAPP_IGNORE_TERM": "1"}))
	WaitServing(s.t, in)
	s.waitLog(s.p, in.ID, "ignoring SIGTERM")
	const grace = 400 * time.Millisecond
	out, took := s.stopAndRead(in.ID, grace)
	if took < grace || took > grace+5*time.Second {
		s.t.Errorf("Stop of an app that ignores SIGTERM took %v, want a little over %v", took, grace)
	}
	if strings.Contains(out, "stopping") {
		s.t.Errorf("the app claims to have stopped gracefully:\n%s", out)
	}
	s.checkGone(in)
}

func testStopUnknown(s *suite) {
	if err := s.p.Stop(s.ctx, "never-launched", time.Second); err != nil {
		s.t.Errorf("Stop of an unknown ID: %v", err)
	}
	if _, err := s.p.Logs(s.ctx, "never-launched", platform.LogOptions{}); !errors.Is(err, platform.ErrNotFound) {
		s.t.Errorf("Logs of an unknown ID: %v, want ErrNotFound", err)
	}
}

func testLogsTail(s *suite) {
	in := s.launch(s.spec("tail-0", 0, map[string]string{"TESTAPP_LINES": "40"}))
	WaitServing(s.t, in)
	s.waitLog(s.p, in.ID, "start line 40\n")
	s.waitLog(s.p, in.ID, "testapp writes to stderr too\n")
	all := s.logs(s.p, in.ID, 0)
	for _, want := range []string{"testapp listening on", "testapp writes to stderr too", "start line 1\n"} {
		if !strings.Contains(all, want) {
			s.t.Errorf("logs lack %q:\n%s", want, all)
		}
	}
	got := s.logs(s.p, in.ID, 5)
	want := "start line 36\nstart line 37\nstart line 38\nstart line 39\nstart line 40\n"
	if s.c.SeparateStreams {
		// The line on stderr may come anywhere among stdout's: the tail is
		// the last five lines of the whole output, whichever they are.
		lines := strings.SplitAfter(all, "\n")
		want = strings.Join(lines[len(lines)-6:], "")
	}
	if got != want {
		s.t.Errorf("Logs Tail 5 = %q, want %q", got, want)
	}
}

func testLogsFollow(s *suite) {
	in := s.launch(s.spec("follow-0", 0, nil))
	WaitServing(s.t, in)
	s.waitLog(s.p, in.ID, "testapp listening on")
	ctx, cancel := context.WithTimeout(s.ctx, 15*time.Second)
	defer cancel()
	r, err := s.p.Logs(ctx, in.ID, platform.LogOptions{Tail: 1, Follow: true})
	if err != nil {
		s.t.Fatal(err)
	}
	defer r.Close()
	for _, q := range []string{"/print?n=3&tag=out", "/print?n=2&tag=err&stream=stderr"} {
		if _, err := Get(in.Address, q); err != nil {
			s.t.Fatal(err)
		}
	}
	sc := bufio.NewScanner(r)
	var seen []string
	streams := [][]string{{"out line 1", "out line 2", "out line 3", "err line 1", "err line 2"}}
	if s.c.SeparateStreams {
		streams = [][]string{{"out line 1", "out line 2", "out line 3"}, {"err line 1", "err line 2"}}
	}
	// Each stream's lines come in order, the streams one after the other
	// unless the platform keeps them apart.
	for remaining := 5; remaining > 0; {
		if !sc.Scan() {
			s.t.Fatalf("follow ended (%v) before %q; saw %q", sc.Err(), streams, seen)
		}
		seen = append(seen, sc.Text())
		for i, st := range streams {
			if len(st) > 0 && sc.Text() == st[0] {
				streams[i] = st[1:]
				remaining--
				break
			}
		}
	}
	// Closing the reader ends the follow.
	if err := r.Close(); err != nil {
		s.t.Errorf("Close: %v", err)
	}
	if _, err := r.Read(make([]byte, 1)); err == nil {
		s.t.Errorf("Read after Close succeeded")
	}
}

func testAdopt(s *suite) {
	in := s.launch(s.spec("adopt-0", 0, nil))
	WaitServing(s.t, in)
	s.waitLog(s.p, in.ID, "testapp listening on")
	p2 := s.open()
	got, ok := s.find(p2, in.ID)
	if !ok || got.State != platform.StateRunning || got.PID != in.PID || !got.StartedAt.Equal(in.StartedAt) || got.Address != in.Address {
		s.t.Fatalf("new platform value lists %+v (found %v), want %+v running", got, ok, in)
	}
	if logs := s.logs(p2, in.ID, 0); !strings.Contains(logs, "testapp listening on") {
		s.t.Errorf("adopted instance's logs lack the start line:\n%s", logs)
	}
	if _, err := Get(in.Address, "/print?n=1&tag=after-adoption"); err != nil {
		s.t.Fatal(err)
	}
	s.waitLog(p2, in.ID, "after-adoption line 1")
	again, err := p2.Launch(s.ctx, s.spec("adopt-0", 0, nil))
	if err != nil || again.PID != in.PID {
		s.t.Errorf("Launch on the new value = %+v, %v; want the adopted instance (pid %d)", again, err, in.PID)
	}
	if err := p2.Stop(s.ctx, in.ID, 10*time.Second); err != nil {
		s.t.Fatal(err)
	}
	if got, ok := s.find(p2, in.ID); ok {
		s.t.Errorf("after Stop, List has %+v", got)
	}
	if _, err := Get(in.Address, "/healthz"); err == nil {
		s.t.Errorf("after Stop, %s still answers", in.Address)
	}
}
