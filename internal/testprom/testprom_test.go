package testprom

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestScrapesWithAToken: Prometheus scrapes a target on the path given,
// sending the token, and answers queries on what it scraped.
func TestScrapesWithAToken(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/custom/metrics" || r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte("# TYPE test_value gauge\ntest_value{kind=\"a\"} 42\n"))
	}))
	defer target.Close()
	p := Start(t, Options{Targets: []Target{{Job: "t", Addr: strings.TrimPrefix(target.URL, "http://"), Path: "/custom/metrics", Token: "s3cret"}}})
	got := p.WaitFor(t, 30*time.Second, `test_value{job="t"}`)
	if len(got) != 1 || got[0].Value != 42 || got[0].Labels["kind"] != "a" {
		t.Fatalf("test_value: %+v", got)
	}
}
