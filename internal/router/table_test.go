package router

import (
	"net/http"
	"testing"
)

func TestSmoothScheduleIsAccurateAndInterleaved(t *testing.T) {
	for _, tc := range []struct{ blue, green int }{{90, 10}, {50, 50}, {99, 1}, {0, 100}, {67, 33}} {
		s := smoothSchedule([]int{tc.blue, tc.green})
		greens, run, maxRun := 0, 0, 0
		for i := range 1000 {
			if s[i%len(s)] == 1 {
				greens++
				run++
				maxRun = max(maxRun, run)
			} else {
				run = 0
			}
		}
		want := tc.green * 10
		if greens < want-10 || greens > want+10 {
			t.Errorf("%d/%d: green got %d of 1000, want %d±10", tc.blue, tc.green, greens, want)
		}
		// Interleaved: the minority fleet never comes twice in a row.
		if tc.green <= 50 && tc.green > 0 && maxRun > 1 {
			t.Errorf("%d/%d: green came %d times in a row", tc.blue, tc.green, maxRun)
		}
	}
}

func TestWeightsThroughTheRouter(t *testing.T) {
	blue, green := newBackend(t, "blue"), newBackend(t, "green")
	r := startRouter(t, twoFleets(blue.addr(), green.addr(), 90, 10))
	c := &http.Client{}
	counts := map[string]int{}
	longestBlueRun, run := 0, 0
	for range 1000 {
		_, body := get(t, c, prodURL(r))
		counts[body]++
		if body == "blue" {
			run++
			longestBlueRun = max(longestBlueRun, run)
		} else {
			run = 0
		}
	}
	if g := counts["green"]; g < 90 || g > 110 {
		t.Fatalf("green served %d of 1000 at weight 10, want 100±10 (counts %v)", g, counts)
	}
	if longestBlueRun > 12 {
		t.Fatalf("blue served %d requests in a row at weight 90: bunched, not interleaved", longestBlueRun)
	}
}

func TestTestListenerServesOnlyTheTestFleet(t *testing.T) {
	blue, green := newBackend(t, "blue"), newBackend(t, "green")
	r := startRouter(t, twoFleets(blue.addr(), green.addr(), 100, 0))
	c := &http.Client{}
	for range 20 {
		if _, body := get(t, c, testURL(r)); body != "green" {
			t.Fatalf("test listener answered from %q", body)
		}
		if _, body := get(t, c, prodURL(r)); body != "blue" {
			t.Fatalf("production answered from %q at blue 100", body)
		}
	}
}

func TestHostRouting(t *testing.T) {
	a, b, c := newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")
	cfg := &Config{Apps: map[string]*AppConfig{
		"exact": {Hosts: []string{"shop.example.com"}, Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{a.addr()}}}},
		"wild":  {Hosts: []string{"*.example.com"}, Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{b.addr()}}}},
		"other": {Hosts: []string{"*"}, Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{c.addr()}}}},
	}}
	r := startRouter(t, cfg)
	client := &http.Client{}
	for host, want := range map[string]string{
		"shop.example.com": "a", "SHOP.example.com:8080": "a", "api.example.com": "b",
		"x.y.example.com": "b", "example.com": "c", "other.test": "c",
	} {
		req, _ := http.NewRequest(http.MethodGet, prodURL(r), nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Get("X-Fleet"); got != want {
			t.Errorf("Host %s went to %q, want %q", host, got, want)
		}
		resp.Body.Close()
	}
}

func TestUnknownHostGetsClear404(t *testing.T) {
	a := newBackend(t, "a")
	r := startRouter(t, &Config{Apps: map[string]*AppConfig{
		"exact": {Hosts: []string{"shop.example.com"}, Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{a.addr()}}}},
	}})
	resp, body := get(t, &http.Client{}, prodURL(r))
	if resp.StatusCode != http.StatusNotFound || body != "bluegreen: no app for host \""+r.Config().Production+"\"\n" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}
