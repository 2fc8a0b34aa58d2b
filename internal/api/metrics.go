package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

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
