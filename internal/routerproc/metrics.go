package routerproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// maxMetricsBytes bounds the router's metrics read at once: thousands of
// targets take a few MiB.
const maxMetricsBytes = 64 << 20

// Metrics reads the router's Prometheus metrics (GET /metrics), so that the
// server can serve them with its own at an address a Prometheus reaches.
func (c *Client) Metrics(ctx context.Context) ([]*dto.MetricFamily, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCallTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	// The delimited protocol buffer format: no text to parse, and it keeps
	// every detail of the histograms.
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeProtoDelim)))
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /metrics on router admin %s: %w", c.admin, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("GET /metrics: %w", decodeError(resp.StatusCode, data))
	}
	dec := expfmt.NewDecoder(io.LimitReader(resp.Body, maxMetricsBytes), expfmt.ResponseFormat(resp.Header))
	var out []*dto.MetricFamily
	for {
		f := &dto.MetricFamily{}
		if err := dec.Decode(f); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("GET /metrics: decoding the answer: %w", err)
		}
		out = append(out, f)
	}
}
