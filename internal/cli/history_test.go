package cli

import (
	"strings"
	"testing"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/audit"
)

// A reason is never cut: its lines after the first follow the row.
func TestHistoryShowsWholeReasons(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.Local)
	end := t0.Add(2 * time.Minute)
	ds := []api.Deployment{
		{ID: "d-2", FromRevision: 1, ToRevision: 2, Outcome: "rolled_back", CreatedAt: t0, FinishedAt: &end,
			Reason: "green instance shop-2-green-0 exited with code 1\n    its last output:\n      nginx: [emerg] unknown directive \"lisen\""},
		{ID: "d-1", ToRevision: 1, Outcome: "succeeded", CreatedAt: t0, FinishedAt: &end, Reason: "green is live"},
	}
	var b strings.Builder
	if err := writeHistory(&b, ds, nil, nil, end); err != nil {
		t.Fatal(err)
	}
	want := `ID   REVISION  OUTCOME      STARTED              TOOK  REASON
d-2  1 → 2     rolled back  2026-01-01 12:00:00  2m0s  green instance shop-2-green-0 exited with code 1
        its last output:
          nginx: [emerg] unknown directive "lisen"
d-1  1         succeeded    2026-01-01 12:00:00  2m0s  green is live
`
	if b.String() != want {
		t.Fatalf("history:\n%s\nwant:\n%s", b.String(), want)
	}
}

// An app that runs images shows each revision's image and the ID it was
// pinned to.
func TestHistoryShowsImages(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.Local)
	end := t0.Add(time.Minute)
	ds := []api.Deployment{
		{ID: "d-2", FromRevision: 1, ToRevision: 2, Outcome: "succeeded", CreatedAt: t0, FinishedAt: &end, Reason: "green is live"},
		{ID: "d-1", ToRevision: 1, Outcome: "succeeded", CreatedAt: t0, FinishedAt: &end, Reason: "green is live"},
	}
	images := map[int64]*api.Image{
		2: {Ref: "hello:latest", ID: "sha256:0123456789abcdef0123"},
		1: {Ref: "hello:latest", ID: "sha256:fedcba98765432100000"},
	}
	var b strings.Builder
	if err := writeHistory(&b, ds, images, nil, end); err != nil {
		t.Fatal(err)
	}
	want := `ID   REVISION  IMAGE                        OUTCOME    STARTED              TOOK  REASON
d-2  1 → 2     hello:latest (0123456789ab)  succeeded  2026-01-01 12:00:00  1m0s  green is live
d-1  1         hello:latest (fedcba987654)  succeeded  2026-01-01 12:00:00  1m0s  green is live
`
	if b.String() != want {
		t.Fatalf("history:\n%s\nwant:\n%s", b.String(), want)
	}
}

// Who started each deployment is shown: the token's name and where the
// request came from.
func TestHistoryShowsWhoStarted(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.Local)
	end := t0.Add(time.Minute)
	ds := []api.Deployment{
		{ID: "d-2", FromRevision: 1, ToRevision: 2, Outcome: "rolled_back", CreatedAt: t0, FinishedAt: &end,
			Reason: "aborted (by ops from 10.0.0.7 via the dashboard)", StartedBy: &audit.Actor{Token: "ci", TokenID: "t-1", Remote: "127.0.0.1"}},
		{ID: "d-1", ToRevision: 1, Outcome: "succeeded", CreatedAt: t0, FinishedAt: &end, Reason: "green is live"},
	}
	var b strings.Builder
	if err := writeHistory(&b, ds, nil, nil, end); err != nil {
		t.Fatal(err)
	}
	want := `ID   REVISION  OUTCOME      STARTED              TOOK  BY                 REASON
d-2  1 → 2     rolled back  2026-01-01 12:00:00  1m0s  ci from 127.0.0.1  aborted (by ops from 10.0.0.7 via the dashboard)
d-1  1         succeeded    2026-01-01 12:00:00  1m0s  -                  green is live
`
	if b.String() != want {
		t.Fatalf("history:\n%s\nwant:\n%s", b.String(), want)
	}
}
