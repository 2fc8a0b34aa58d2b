package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"bluegreen/internal/platform"
	"bluegreen/internal/sampler"
)

// Metrics is an app's recent traffic per fleet, as the server samples it
// from the router: one point every IntervalSeconds, reaching back
// SpanSeconds. The dashboard draws its charts from it.
type Metrics struct {
	App             string          `json:"app"`
	IntervalSeconds float64         `json:"interval_seconds"`
	SpanSeconds     float64         `json:"span_seconds"`
	Samples         []sampler.Point `json:"samples"`
}

// getMetrics answers GET /api/v1/apps/{app}/metrics?since=TIME: the
// samples taken after TIME (RFC 3339), all that are kept without it.
func (s *Server) getMetrics(w http.ResponseWriter, r *http.Request) {
	app, err := appName(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var since time.Time
	if v := r.URL.Query().Get("since"); v != "" {
		if since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			writeError(w, &Error{http.StatusBadRequest, CodeInvalid, fmt.Sprintf("query parameter since=%q: want a time in RFC 3339, e.g. 2026-11-22T06:45:25Z", v)})
			return
		}
	}
	if _, err := s.Store.GetApp(r.Context(), app); err != nil {
		writeError(w, err)
		return
	}
	out := Metrics{App: app, Samples: []sampler.Point{}}
	if s.Samples != nil {
		out.IntervalSeconds, out.SpanSeconds = s.Samples.Every().Seconds(), s.Samples.Keep().Seconds()
		out.Samples = s.Samples.Since(app, since)
	}
	writeJSON(w, http.StatusOK, out)
}

// Metrics reads the app's sampled traffic after since (all of it when zero).
func (c *Client) Metrics(ctx context.Context, app string, since time.Time) (Metrics, error) {
	var out Metrics
	path := "/api/v1/apps/" + url.PathEscape(app) + "/metrics"
	if !since.IsZero() {
		path += "?since=" + url.QueryEscape(since.Format(time.RFC3339Nano))
	}
	err := c.doJSON(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// prometheusMetrics answers GET /api/v1/metrics: the server's metrics and
// the router's, in the Prometheus exposition format.
func (s *Server) prometheusMetrics(w http.ResponseWriter, r *http.Request) {
	if s.Metrics == nil {
		writeError(w, &Error{http.StatusNotFound, CodeNotFound, "this server keeps no metrics"})
		return
	}
	s.Metrics.Handler().ServeHTTP(w, r)
}

// PrometheusTargets is one group of Prometheus's HTTP service discovery:
// addresses to scrape and the labels their series get.
type PrometheusTargets struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// prometheusTargets answers GET /api/v1/prometheus/targets for a
// Prometheus's http_sd_configs: every running instance of every app, one
// group each, labelled with its app, fleet (the slot, as the router's
// metrics label it), revision and instance ID, so that an app's own
// metrics can be queried like the router's.
func (s *Server) prometheusTargets(w http.ResponseWriter, r *http.Request) {
	apps, err := s.Store.ListApps(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	out := []PrometheusTargets{}
	for _, a := range apps {
		ins, err := s.Engine.Instances(r.Context(), a.Name)
		if err != nil {
			// One app's platform being down (a Docker engine) leaves the
			// others' targets in the answer.
			s.log().Warn("listing instances for Prometheus", "app", a.Name, "err", err)
			continue
		}
		for _, in := range ins {
			if in.State != platform.StateRunning || in.Address == "" {
				continue
			}
			labels := map[string]string{
				"app": in.App, "fleet": in.Fleet, "revision": strconv.FormatInt(in.Revision, 10), "instance_id": in.ID,
			}
			if in.Service != "" {
				labels["service"] = in.Service // a service of a stack
			}
			out = append(out, PrometheusTargets{Targets: []string{in.Address}, Labels: labels})
		}
	}
	writeJSON(w, http.StatusOK, out)
}
