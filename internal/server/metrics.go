package server

import (
	"context"

	dto "github.com/prometheus/client_model/go"

	"bluegreen/internal/metrics"
	"bluegreen/internal/routerproc"
	"bluegreen/internal/store"
)

// newMetrics makes the server's metrics: active deployments read from the
// store at scrape time, and the router's own metrics read over its admin
// socket, so that one scrape of GET /api/v1/metrics has both.
func newMetrics(st *store.Store, sup *routerproc.Supervisor) *metrics.Metrics {
	return metrics.New(metrics.Options{
		Active: func(ctx context.Context) ([]metrics.Active, error) {
			ds, err := st.ListDeployments(ctx, "", true, 0)
			if err != nil {
				return nil, err
			}
			out := make([]metrics.Active, len(ds))
			for i, d := range ds {
				out[i] = metrics.Active{App: d.App, Phase: d.Phase}
			}
			return out, nil
		},
		Router: func(ctx context.Context) ([]*dto.MetricFamily, error) { return sup.Client().Metrics(ctx) },
	})
}
