package api

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"bluegreen/internal/auth"
	"bluegreen/internal/metrics"
)

// TestPrometheusMetricsRoute: GET /api/v1/metrics needs a token, and
// counts API requests by route pattern, never by the path asked for.
func TestPrometheusMetricsRoute(t *testing.T) {
	e := newAPIEnvWith(t, envOptions{server: func(s *Server) { s.Metrics = metrics.New(metrics.Options{}) }})
	viewer := e.token(t, "prometheus", auth.Viewer)
	for _, app := range []string{"shop", "cart", "x-secret-looking-name"} {
		if a := call(t, e.url, "GET", "/api/v1/apps/"+app, "", "Bearer "+viewer); a.status != http.StatusNotFound {
			t.Fatalf("GET app %s: %d", app, a.status)
		}
	}
	if a := call(t, e.url, "GET", "/api/v1/metrics", "", ""); a.status != http.StatusUnauthorized {
		t.Fatalf("without a token: %d %s", a.status, a.raw)
	}
	req, _ := http.NewRequest("GET", e.url+"/api/v1/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+viewer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /api/v1/metrics: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), text)
	}
	for _, want := range []string{
		`bluegreen_api_requests_total{code="404",method="GET",route="/api/v1/apps/{app}"} 3`,
		`bluegreen_api_requests_total{code="401",method="GET",route="/api/v1/metrics"} 1`,
		`bluegreen_api_request_duration_seconds_count{method="GET",route="/api/v1/apps/{app}"} 3`,
		"go_goroutines ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the metrics lack %s", want)
		}
	}
	if strings.Contains(text, "x-secret-looking-name") {
		t.Errorf("a path asked for became a label value:\n%s", text)
	}
}
