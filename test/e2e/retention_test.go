package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bluegreen/internal/testwait"
)

// Retention prunes what it no longer keeps while a deployment runs, under
// load, and removes nothing a fleet or a rollback within the kept range
// needs.
func TestRetentionPrunesUnderARunningDeployment(t *testing.T) {
	e := &deployEnv{t: t, data: filepath.Join(t.TempDir(), "data"), prod: freeAddr(t), test: freeAddr(t), binary: bin.bluegreen,
		args: []string{"--run-as", "root", "--keep-revisions", "2", "--keep-for", "0s", "--prune-every", "200ms"}}
	t.Cleanup(e.teardown)
	e.startServer()
	ctx := context.Background()

	var ids []string
	for v := 1; v <= 4; v++ {
		ids = append(ids, e.deployLive(fmt.Sprintf("v%d", v), e.specFor(quick)).ID)
	}
	l := startLoad(t, "http://"+e.prod+"/", 100)
	d := e.deploy("v5", e.specFor(quick+"strategy:\n  approval: manual\n"), nil)
	e.waitPhase(d.ID, 30*time.Second, "AwaitingApproval")

	revDir := func(g int) string { return filepath.Join(e.data, "revisions", "shop", fmt.Sprint(g)) }
	gone := func(p string) bool { _, err := os.Stat(p); return os.IsNotExist(err) }
	testwait.For(t, 20*time.Second, "revisions 1 to 3 to be pruned", func() bool {
		return gone(revDir(1)) && gone(revDir(2)) && gone(revDir(3))
	})
	for _, g := range []int{4, 5} {
		if gone(revDir(g)) {
			t.Fatalf("revision %d, in use, was pruned", g)
		}
	}
	// Their events and their instances' output went with them.
	testwait.For(t, 10*time.Second, "the events of the first deployments to be pruned", func() bool {
		return len(e.events(ids[0])) == 0 && len(e.events(ids[2])) == 0
	})
	if len(e.events(ids[3])) == 0 || len(e.events(d.ID)) == 0 {
		t.Fatal("events of a kept revision's deployment were pruned")
	}
	if _, err := e.api.Logs(ctx, "shop", "shop-1-green-0", 0); err == nil {
		t.Error("the output of revision 1's instance is still there")
	}
	// The deployment in progress goes on undisturbed.
	if _, err := e.api.Promote(ctx, "shop", false); err != nil {
		t.Fatal(err)
	}
	if got := e.waitEnd(d.ID, 60*time.Second); got.Outcome != "succeeded" {
		t.Fatalf("v5: %s (%s)\n%s", got.Outcome, got.Reason, e.eventLog(d.ID))
	}
	// A pruned revision cannot be deployed again, and says why.
	if _, err := e.api.Rollback(ctx, "shop", 2); err == nil || !strings.Contains(err.Error(), "revision 2 of app shop was pruned") {
		t.Errorf("rollback to a pruned revision: %v", err)
	}
	// A rollback within the kept range works.
	rb, err := e.api.Rollback(ctx, "shop", 4)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.waitEnd(rb.ID, 60*time.Second); got.Outcome != "succeeded" {
		t.Fatalf("rollback to 4: %s (%s)\n%s", got.Outcome, got.Reason, e.eventLog(rb.ID))
	}
	recs := l.stop()
	if f := failures(recs); len(f) > 0 {
		t.Fatalf("%d of %d requests failed: %s", len(f), len(recs), summary(f))
	}
	t.Logf("%s, 0 failed; revisions 1-3 pruned while v5 was deployed", summary(recs))
}
