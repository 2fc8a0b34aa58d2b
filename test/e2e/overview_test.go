package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/testwait"
)

// The overview (GET /api/v1/status) says of each app what its own status
// says, but for the instances: the dashboard's apps page reads it in one
// request, whatever the number of apps. The apps list names each app's
// active deployment.
func TestOverviewMatchesEachAppsStatus(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	e.deployLive("v1", e.specFor(quick))
	paused := e.specFor(quick + "strategy:\n  steps:\n    - { weight: 30, pause: 1h }\n    - { weight: 100 }\n")
	d := e.deploy("v2", paused, nil)
	e.waitPhase(d.ID, 60*time.Second, "Shifting")
	// Settled: green at its first step, waiting out the pause.
	var ov api.Overview
	var st api.Status
	testwait.ForOr(t, 30*time.Second, "green settled at 30 % in the status and the overview alike", func() bool {
		var err error
		if st, err = e.api.Status(ctx, "shop", ""); err != nil {
			t.Fatal(err)
		}
		if ov, err = e.api.Overview(ctx, ""); err != nil {
			t.Fatal(err)
		}
		// The router's weights follow the stored step a moment later: the
		// two reads agree once the push of that step is through.
		return st.Progress != nil && st.Progress.Weight == 30 && st.Progress.Waiting == "pause" && len(ov.Apps) == 1 && ov.Apps[0].Progress != nil && ov.Apps[0].Progress.Weight == 30 &&
			sameWeights(ov.Apps[0].Fleets, st.Fleets)
	}, func() string { return fmt.Sprintf("status %+v, overview %+v", st.Progress, ov.Apps) })
	o := ov.Apps[0]
	if ov.Window != "10s" || o.Name != "shop" || o.Deployment == nil || o.Deployment.ID != d.ID || o.LiveRevision != st.LiveRevision {
		t.Fatalf("overview of shop: %+v", o.App)
	}
	if o.Progress.Next != st.Progress.Next || o.Progress.Steps != st.Progress.Steps {
		t.Errorf("progress: overview %+v, status %+v", o.Progress, st.Progress)
	}
	if len(o.Fleets) != len(st.Fleets) {
		t.Fatalf("fleets: overview %+v, status %+v", o.Fleets, st.Fleets)
	}
	for i, f := range o.Fleets {
		s := st.Fleets[i]
		if f.Name != s.Name || f.Role != s.Role || f.Revision != s.Revision || f.Weight != s.Weight || f.Targets != s.Targets || f.Test != s.Test {
			t.Errorf("fleet %d: overview %+v, status %+v", i, f, s)
		}
		if len(f.Instances) != 0 || len(s.Instances) == 0 {
			t.Errorf("fleet %s: %d instances in the overview (want none), %d in the status", f.Name, len(f.Instances), len(s.Instances))
		}
	}
	apps, err := e.api.Apps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 1 || apps[0].Deployment == nil || apps[0].Deployment.ID != d.ID {
		t.Fatalf("apps list: %+v", apps)
	}
	if _, err := e.api.Abort(ctx, "shop", "done looking"); err != nil {
		t.Fatal(err)
	}
	e.waitEnd(d.ID, 60*time.Second)
	if ov, err = e.api.Overview(ctx, "1m"); err != nil {
		t.Fatal(err)
	}
	if o := ov.Apps[0]; ov.Window != "1m" || o.Deployment != nil || o.LastDeployment == nil || o.LastDeployment.ID != d.ID || o.LastDeployment.Outcome != "rolled_back" {
		t.Fatalf("after the abort: %+v, last %+v", o.App, o.LastDeployment)
	}
}

// sameWeights says whether two accounts of an app's fleets give each fleet
// the same weight, and the candidate the weight of its step.
func sameWeights(a, b []api.FleetStatus) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Weight != b[i].Weight || (a[i].Test && a[i].Weight != 30) {
			return false
		}
	}
	return true
}
