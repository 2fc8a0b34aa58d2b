package router

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestStatsWindowQuery(t *testing.T) {
	r, admin, _, _ := adminRouter(t, "")
	c := &http.Client{}
	for range 12 {
		get(t, c, prodURL(r))
	}
	code, body := call(t, "GET", admin+"/stats?window=30s", "", "")
	var s Snapshot
	if code != 200 || json.Unmarshal([]byte(body), &s) != nil {
		t.Fatalf("GET /stats?window=30s: %d %s", code, body)
	}
	blue := s.Apps["shop"].Fleets["blue"]
	w, ok := blue.Windows["30s"]
	if s.Window != "30s" || !ok || w.Requests != 12 || w.P95 <= 0 || w.P50 > w.P95 || w.P95 > w.P99 {
		t.Fatalf("window %q, blue 30s window %+v (present %v)", s.Window, w, ok)
	}
	if w.Rate != 12.0/30 {
		t.Errorf("rate over 30s = %v, want %v", w.Rate, 12.0/30)
	}
	if tw := blue.Targets[0].Windows["30s"]; tw.Requests != 12 {
		t.Errorf("target 30s window %+v", tw)
	}
	if len(blue.Windows) != len(Windows)+1 {
		t.Errorf("windows %v: want the fixed ones and 30s", keys(blue.Windows))
	}
	if !strings.Contains(body, `"p95_seconds"`) {
		t.Errorf("no p95_seconds in %s", body)
	}
	// The fleet's asked-for window carries its latency histogram; the
	// fixed windows and the targets' do not.
	var inHist uint64
	for i, b := range w.Latency {
		inHist += b.Count
		if b.Count == 0 || !(b.To > b.From) || i > 0 && b.From < w.Latency[i-1].To {
			t.Errorf("latency bucket %d: %+v", i, b)
		}
	}
	if inHist != 12 {
		t.Errorf("the 30s histogram counts %d requests, want 12: %+v", inHist, w.Latency)
	}
	if blue.Windows["1m"].Latency != nil || blue.Targets[0].Windows["30s"].Latency != nil {
		t.Errorf("a histogram in a fixed window or a target's window")
	}

	// Without a window, only the fixed ones, and no "window" field.
	code, body = call(t, "GET", admin+"/stats", "", "")
	s = Snapshot{}
	if code != 200 || json.Unmarshal([]byte(body), &s) != nil || s.Window != "" ||
		len(s.Apps["shop"].Fleets["green"].Windows) != len(Windows) {
		t.Fatalf("plain /stats: %d %s", code, body)
	}

	for in, name := range map[string]string{"1s": "1s", "5s": "5s", "60s": "1m", "90s": "1m30s", "2m": "2m", "5m": "5m", "1m0s": "1m"} {
		code, body := call(t, "GET", admin+"/stats?window="+in, "", "")
		s := Snapshot{}
		if code != 200 || json.Unmarshal([]byte(body), &s) != nil || s.Window != name {
			t.Errorf("window=%s: %d, named %q, want %q", in, code, s.Window, name)
			continue
		}
		if _, ok := s.Apps["shop"].Fleets["blue"].Windows[name]; !ok {
			t.Errorf("window=%s: no window %q", in, name)
		}
	}
}

func TestStatsQueryErrors(t *testing.T) {
	_, admin, _, _ := adminRouter(t, "")
	for _, tc := range []struct{ query, code, want string }{
		{"window=soon", "invalid_request", `window: \"soon\" is not a duration`},
		{"window=", "invalid_request", `window: \"\" is not a duration`},
		{"window=0s", "invalid_request", "window: 0s is out of range 1s..5m"},
		{"window=-5s", "invalid_request", "window: -5s is out of range"},
		{"window=500ms", "invalid_request", "window: 500ms is out of range"},
		{"window=6m", "invalid_request", "window: 6m0s is out of range 1s..5m"},
		{"window=1500ms", "invalid_request", "window: 1.5s is not a whole number of seconds"},
		{"window=5s&window=10s", "invalid_request", "window: given 2 times"},
		{"windw=5s", "invalid_request", `unknown parameter \"windw\"`},
	} {
		code, body := call(t, "GET", admin+"/stats?"+tc.query, "", "")
		if code != 400 || !strings.Contains(body, `"code": "`+tc.code+`"`) || !strings.Contains(body, tc.want) {
			t.Errorf("?%s: %d %s, want 400 %s %s", tc.query, code, body, tc.code, tc.want)
		}
	}
}

func TestStatsForOneApp(t *testing.T) {
	r, admin, _, _ := adminRouter(t, "")
	cfg := r.Config()
	cfg.Apps["cart"] = &AppConfig{Hosts: []string{"cart.example.com"},
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: cfg.Apps["shop"].Fleets["blue"].Targets}}}
	if _, err := r.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if all := r.Stats(); len(all.Apps) != 2 {
		t.Fatalf("apps %v", all.Apps)
	}
	code, body := call(t, "GET", admin+"/stats?app=cart&window=5s", "", "")
	var s Snapshot
	if code != 200 || json.Unmarshal([]byte(body), &s) != nil || len(s.Apps) != 1 || s.Apps["cart"].Fleets["blue"].Windows["5s"].ByClass == nil {
		t.Fatalf("?app=cart: %d %s", code, body)
	}
	code, body = call(t, "GET", admin+"/stats?app="+url.QueryEscape("nope"), "", "")
	if code != 404 || !strings.Contains(body, `"code": "not_found"`) || !strings.Contains(body, `app \"nope\": not in the routing table`) {
		t.Fatalf("?app=nope: %d %s", code, body)
	}
}

func TestWindowOfOwnLength(t *testing.T) {
	var m metrics
	now := time.Now()
	// One request per second for the last 20 seconds.
	for i := range 20 {
		m.record(now.Add(-time.Duration(i)*time.Second), 200, time.Millisecond, 0, 0)
	}
	for _, tc := range []struct {
		d    time.Duration
		want uint64
	}{{time.Second, 1}, {5 * time.Second, 5}, {7 * time.Second, 7}, {30 * time.Second, 20}} {
		if got := m.window(now, tc.d).Requests; got != tc.want {
			t.Errorf("%s window holds %d requests, want %d", tc.d, got, tc.want)
		}
	}
}

func TestWindowHistogram(t *testing.T) {
	var m metrics
	now := time.Now()
	for _, d := range []time.Duration{time.Microsecond, 18 * time.Millisecond, 18 * time.Millisecond, 23 * time.Millisecond, 10 * time.Minute} {
		m.record(now, 200, d, 0, 0)
	}
	ws := m.windowHist(now, 5*time.Second)
	want := []LatencyBucket{
		{From: 0, To: 16e-6, Count: 1},
		{From: 0.016384, To: 0.02048, Count: 2},
		{From: 0.02048, To: 0.024576, Count: 1},
		{From: bucketLower(latBuckets - 1), Count: 1}, // the open last bucket has no To
	}
	if len(ws.Latency) != len(want) {
		t.Fatalf("histogram %+v, want %+v", ws.Latency, want)
	}
	for i, b := range ws.Latency {
		if b.Count != want[i].Count || math.Abs(b.From-want[i].From) > 1e-12 || math.Abs(b.To-want[i].To) > 1e-12 {
			t.Errorf("bucket %d = %+v, want %+v", i, b, want[i])
		}
	}
	if ws.Requests != 5 || ws.P50 != m.window(now, 5*time.Second).P50 {
		t.Errorf("the window's stats changed with its histogram: %+v", ws)
	}
}

func TestEmptyTableIsValid(t *testing.T) {
	cfg, err := ParseYAML([]byte("admin: unix:/tmp/x.sock\napps: {}\n"))
	if err != nil || len(cfg.Apps) != 0 {
		t.Fatalf("apps: {}: %v", err)
	}
	if _, err := ParseJSON([]byte(`{"apps": {}}`)); err != nil {
		t.Fatalf("JSON apps {}: %v", err)
	}
	// A router with no apps yet answers its admin API and takes a first app later.
	r := startRouter(t, &Config{Apps: map[string]*AppConfig{}})
	addr, err := r.ListenAdmin("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := "http://" + addr.String()
	if code, body := call(t, "GET", admin+"/stats?window=10s", "", ""); code != 200 || !strings.Contains(body, `"apps": {}`) {
		t.Fatalf("stats of an empty table: %d %s", code, body)
	}
	be := newBackend(t, "blue")
	first := oneFleet(be.addr())
	first.Production = r.Config().Production
	tbl, _ := json.Marshal(first)
	if code, body := call(t, "PUT", admin+"/routes", "", string(tbl)); code != 200 {
		t.Fatalf("first app: %d %s", code, body)
	}
	if code, body := call(t, "PUT", admin+"/routes", "", `{"apps": {}}`); code != 200 {
		t.Fatalf("back to no apps: %d %s", code, body)
	}
}

func keys[V any](m map[string]V) []string { return sortedKeys(m) }
