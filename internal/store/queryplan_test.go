package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// queryPlan is SQLite's plan for a statement, one step a line.
func queryPlan(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	rows, err := s.r.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		b.WriteString(detail + "\n")
	}
	return b.String()
}

// The reads made for one app, for one deployment and for the active
// deployments go by an index: with a thousand apps, a read that scans
// every deployment or event of every app, made for each app, grows with
// the square of their number.
func TestReadsOfOneAppUseAnIndex(t *testing.T) {
	s := openTest(t, t.TempDir())
	plan := func(query string, args []any) string { return queryPlan(t, s, query, args...) }
	for _, c := range []struct {
		what, plan, want string
	}{
		{"an app's deployments", plan(deploymentsQuery("a", false, 1)), "INDEX deployments_app (app=?)"},
		{"an app's active deployment", plan(deploymentsQuery("a", true, 1)), "INDEX deployments_one_active (app=?)"},
		{"every active deployment", plan(deploymentsQuery("", true, 0)), "INDEX deployments_one_active"},
		{"an app's events", plan(eventsQuery(EventFilter{App: "a", AfterSeq: 5}, 10)), "INDEX events_app (app=? AND seq>?)"},
		{"a deployment's events", plan(eventsQuery(EventFilter{DeploymentID: "d"}, 10)), "INDEX events_deployment (deployment_id=? AND seq>?)"},
		{"events after a point", plan(eventsQuery(EventFilter{AfterSeq: 5}, 10)), "INTEGER PRIMARY KEY (rowid>?)"},
		{"every app's latest deployment", plan(latestQuery, nil), "SEARCH deployments USING INDEX deployments_app (app=?)"},
	} {
		if !strings.Contains(c.plan, c.want) {
			t.Errorf("%s: plan\n%swant %s", c.what, c.plan, c.want)
		}
	}
}

func TestLatestDeploymentsOfEveryApp(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	for _, app := range []string{"shop", "blog", "idle"} {
		if _, err := s.CreateRevision(ctx, Revision{App: app, Source: "bundle:sha256:aa"}); err != nil {
			t.Fatal(err)
		}
	}
	var last string
	for i := range 3 {
		d, err := s.CreateDeployment(ctx, Deployment{App: "shop", ToGeneration: 1, Phase: "Succeeded", Outcome: OutcomeSucceeded, Reason: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		last = d.ID
	}
	active, err := s.CreateDeployment(ctx, Deployment{App: "blog", ToGeneration: 1, Phase: "Pending"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.LatestDeployments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["shop"].ID != last || got["blog"].ID != active.ID || !got["blog"].Active() {
		t.Fatalf("LatestDeployments = %+v; want shop's last (%s) and blog's active (%s), none for idle", got, last, active.ID)
	}
}
