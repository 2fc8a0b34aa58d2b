package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadPrometheusRefusesToStart: a --prometheus that is not a base URL
// ends the start with a clear error, before anything is made.
func TestBadPrometheusRefusesToStart(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	for url, want := range map[string]string{
		"127.0.0.1:9090":               "want the http:// or https:// address of a Prometheus",
		"http://127.0.0.1:9090/?q=up":  "without ?query or #fragment",
		"ftp://prometheus.example:21/": "want the http:// or https:// address",
	} {
		err := Run(context.Background(), Options{DataDir: data, APIAddr: "127.0.0.1:0", Prometheus: url})
		if err == nil || !strings.HasPrefix(err.Error(), "--prometheus: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("--prometheus %s: %v; want an error with %q", url, err, want)
		}
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("the data directory was made: %v", err)
	}
}
