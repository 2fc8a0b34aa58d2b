package store

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashChildEnv makes the test binary act as the writer that gets killed.
const crashChildEnv = "BLUEGREEN_STORE_CRASH_CHILD"

// TestCrashChild is the child half of TestKill9: it writes until killed and
// reports each write on stdout only after its commit returned.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestKill9")
	}
	if err := crashChild(dir); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
}

func crashChild(dir string) error {
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		return err
	}
	// Several writers at once, so that updates commit together in one
	// transaction as they do with many deployments.
	errs := make(chan error, len(crashApps))
	for _, app := range crashApps {
		go func() { errs <- crashWriter(ctx, s, app) }()
	}
	return <-errs
}

// crashApps are the apps the child's writers update, one writer each.
var crashApps = []string{"crash", "crash-1", "crash-2", "crash-3"}

// crashWriter updates one app's deployments until the child is killed.
func crashWriter(ctx context.Context, s *Store, app string) error {
	// Lines go straight to the pipe, unbuffered, each in one write: a line
	// is only written after the commit it reports, so a killed child can
	// never claim more than it did.
	report := func(format string, args ...any) { fmt.Fprintf(os.Stdout, format+"\n", args...) }
	if _, err := s.GetRevision(ctx, app, 1); err != nil {
		if _, err := s.CreateRevision(ctx, Revision{App: app, Source: "bundle:sha256:00"}); err != nil {
			return err
		}
	}
	d, err := s.ActiveDeployment(ctx, app)
	for i := 0; ; i++ {
		if err != nil { // no active deployment: start one
			var ev Event
			err = s.Update(ctx, func(tx *Tx) error {
				if d, err = tx.CreateDeployment(ctx, Deployment{App: app, ToGeneration: 1, Phase: "Pending"}); err != nil {
					return err
				}
				ev, err = tx.AppendEvent(ctx, Event{App: app, DeploymentID: d.ID, Kind: "write", Fields: map[string]any{"version": 1}})
				return err
			})
			if err != nil {
				return err
			}
			report("W %s %d %d", d.ID, d.Version, ev.Seq)
		}
		var ev Event
		next := d
		next.Step++
		next.Deadlines = map[string]time.Time{"step": time.Now().Add(time.Minute)}
		if i%25 == 24 {
			next.Outcome = OutcomeSucceeded
		}
		err = s.Update(ctx, func(tx *Tx) error {
			var err error
			if next, err = tx.UpdateDeployment(ctx, next); err != nil {
				return err
			}
			ev, err = tx.AppendEvent(ctx, Event{App: app, DeploymentID: d.ID, Kind: "write",
				Fields: map[string]any{"version": next.Version}})
			return err
		})
		if err != nil {
			return err
		}
		report("W %s %d %d", next.ID, next.Version, ev.Seq)
		d = next
		if !d.Active() {
			err = ErrNotFound // start a new deployment on the next turn
		}
	}
}

type reportedWrite struct {
	id      string
	version int64
	seq     int64
}

// TestKill9 kills a writing child at random moments and checks that every
// write it reported survived, that the file is intact and that each
// deployment's version matches the events committed with it.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	dir := t.TempDir()
	rounds := 15
	if raceEnabled {
		rounds = 3
	}
	if v, err := strconv.Atoi(os.Getenv("BLUEGREEN_KILL9_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	var all []reportedWrite
	for round := range rounds {
		writes := runAndKill(t, dir, 1+rand.IntN(80))
		if len(writes) == 0 {
			t.Fatalf("round %d: the child reported no writes", round)
		}
		all = append(all, writes...)
		verifyAfterCrash(t, dir, all)
	}
	t.Logf("%d rounds, %d reported writes, all present", rounds, len(all))
}

// runAndKill starts the child, lets it report at least n writes (plus a
// bounded random delay, to land the kill anywhere in a transaction), then
// sends SIGKILL and returns every fully reported write.
func runAndKill(t *testing.T, dir string, n int) []reportedWrite {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var writes []reportedWrite
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		var w reportedWrite
		if _, err := fmt.Sscanf(sc.Text(), "W %s %d %d", &w.id, &w.version, &w.seq); err != nil {
			continue // testing framework chatter
		}
		writes = append(writes, w)
		if !killed && len(writes) >= n {
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	// Lines written before the kill are still in the pipe; the scanner
	// has read them all by now, and a torn last line fails to parse.
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before being killed: %v\n%s", err, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v\n%s", err, stderr.String())
	}
	return writes
}

func verifyAfterCrash(t *testing.T, dir string, writes []reportedWrite) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatalf("reopening after kill: %v", err)
	}
	defer s.Close()
	var integrity string
	if err := s.r.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("integrity_check = %q, %v", integrity, err)
	}
	for _, w := range writes {
		d, err := s.GetDeployment(ctx, w.id)
		if err != nil {
			t.Fatalf("reported deployment %s lost: %v", w.id, err)
		}
		if d.Version < w.version {
			t.Fatalf("deployment %s at version %d, but version %d was reported committed", w.id, d.Version, w.version)
		}
		evs, err := s.ListEvents(ctx, EventFilter{AfterSeq: w.seq - 1, Limit: 1})
		if err != nil || len(evs) != 1 || evs[0].Seq != w.seq || evs[0].DeploymentID != w.id ||
			evs[0].Fields["version"] != float64(w.version) {
			t.Fatalf("reported event %d (deployment %s v%d) lost or wrong: %+v, %v", w.seq, w.id, w.version, evs, err)
		}
	}
	// Each transaction bumped a version and appended one event: the two
	// must agree for every deployment, whatever moment the kill hit.
	for _, app := range crashApps {
		verifyApp(t, s, app)
	}
}

// verifyApp checks one app's deployments against their events.
func verifyApp(t *testing.T, s *Store, app string) {
	t.Helper()
	ctx := context.Background()
	deps, err := s.ListDeployments(ctx, app, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	active := 0
	for _, d := range deps {
		if d.Active() {
			active++
		}
		evs, err := s.ListEvents(ctx, EventFilter{DeploymentID: d.ID, Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(evs)) != d.Version || evs[len(evs)-1].Fields["version"] != float64(d.Version) {
			t.Fatalf("deployment %s at version %d has %d events", d.ID, d.Version, len(evs))
		}
	}
	if active > 1 {
		t.Fatalf("%d active deployments of %s after crash", active, app)
	}
}
