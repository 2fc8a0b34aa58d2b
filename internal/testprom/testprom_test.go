package testprom

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestScrapesWithAToken: Prometheus scrapes a target on the path given,
// sending the token, and the targets an HTTP service discovery lists, with
// their labels; it answers queries on what it scraped.
func TestScrapesWithAToken(t *testing.T) {
	var addr string
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/sd" && r.Header.Get("Authorization") == "Bearer s3cret":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `[{"targets": [%q], "labels": {"fleet": "blue"}}]`, addr)
			return
		case r.URL.Path == "/metrics" && r.Header.Get("Authorization") == "":
			w.Write([]byte("discovered_value 7\n"))
			return
		}
		if r.URL.Path != "/custom/metrics" || r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte("# TYPE test_value gauge\ntest_value{kind=\"a\"} 42\n"))
	}))
	defer target.Close()
	addr = strings.TrimPrefix(target.URL, "http://")
	p := Start(t, Options{Targets: []Target{
		{Job: "t", Addr: addr, Path: "/custom/metrics", Token: "s3cret"},
		{Job: "sd", Addr: addr, Discovery: "/sd", Token: "s3cret"},
	}})
	got := p.WaitFor(t, 30*time.Second, `test_value{job="t"}`)
	if len(got) != 1 || got[0].Value != 42 || got[0].Labels["kind"] != "a" {
		t.Fatalf("test_value: %+v", got)
	}
	got = p.WaitFor(t, 30*time.Second, `discovered_value{job="sd"}`)
	if len(got) != 1 || got[0].Value != 7 || got[0].Labels["fleet"] != "blue" {
		t.Fatalf("discovered_value: %+v", got)
	}
}
