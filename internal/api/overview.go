package api

import (
	"context"
	"net/http"
	"net/url"

	"bluegreen/internal/store"
)

// Overview is every app's status at once, as the dashboard's apps page
// shows it: each app as GET /api/v1/apps/{app}/status answers it, but for
// the instances (empty lists) and a stack's services, which the overview
// leaves out.
type Overview struct {
	Window string   `json:"window"`
	Apps   []Status `json:"apps"`
}

// getOverview answers GET /api/v1/status?window=10s|1m. Its cost does not
// grow with the apps squared: the apps, their latest deployments and
// their traffic are each read once for all of them (a page that asked for
// each app's status would make a request per app, each reading the
// router), and only the active deployments are read one by one.
func (s *Server) getOverview(w http.ResponseWriter, r *http.Request) {
	window, span, err := statusWindow(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx := r.Context()
	apps, err := s.Store.ListApps(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	latest, err := s.Store.LatestDeployments(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	names := make([]string, 0, len(apps))
	for _, a := range apps {
		names = append(names, a.Name)
	}
	traffic, err := s.Engine.AllFleets(ctx, names, span)
	if err != nil {
		writeError(w, err)
		return
	}
	gates, err := s.Store.ListGates(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	out := Overview{Window: window, Apps: make([]Status, 0, len(apps))}
	for _, a := range apps {
		st := Status{App: appWith(a, latest), Window: window}
		if g, ok := gates[a.Name]; ok {
			st.Gate = gateOf(g, ok)
		}
		if st.Deployment != nil {
			if st.Progress, _, err = s.progress(ctx, st.Deployment.ID); err != nil {
				writeError(w, err)
				return
			}
		} else if d, ok := latest[a.Name]; ok {
			last := deploymentOf(d)
			st.LastDeployment = &last
		}
		st.Fleets = fleetStatuses(a, traffic[a.Name], nil, span)
		assignRoles(&st)
		out.Apps = append(out.Apps, st)
	}
	writeJSON(w, http.StatusOK, out)
}

// appWith is an app as the API shows it, with its active deployment taken
// from the apps' latest deployments.
func appWith(a store.App, latest map[string]store.Deployment) App {
	out := App{Name: a.Name, LiveRevision: a.LiveGeneration, LiveFleet: a.LiveSlot, LiveInstances: a.LiveInstances,
		CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
	if d, ok := latest[a.Name]; ok && d.Active() {
		dd := deploymentOf(d)
		out.Deployment = &dd
	}
	return out
}

// Overview reads every app's status at once, with numbers over window
// ("10s" or "1m"; "" for 10s).
func (c *Client) Overview(ctx context.Context, window string) (Overview, error) {
	var out Overview
	path := "/api/v1/status"
	if window != "" {
		path += "?window=" + url.QueryEscape(window)
	}
	err := c.doJSON(ctx, http.MethodGet, path, nil, &out)
	return out, err
}
