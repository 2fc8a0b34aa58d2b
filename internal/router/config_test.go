package router

import (
	"os"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestExampleRouteFileParses(t *testing.T) {
	cfg, err := LoadFile("../../examples/router/routes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Apps["shop"]
	if a.Fleets["blue"].Weight != 100 || a.TestFleet != "green" || !a.Sticky || a.StickyCookie != "bg_shop" ||
		a.Health.Interval.D().String() != "1s" || a.Health.HealthyThreshold != DefaultHealthyThreshold {
		t.Fatalf("parsed %+v health %+v", a, a.Health)
	}
}

func TestRouteFileErrors(t *testing.T) {
	base := `
production: 127.0.0.1:8080
test: 127.0.0.1:8081
apps:
  shop:
    fleets:
      blue: { weight: 100, targets: ["127.0.0.1:9001"] }
`
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key names its line", base + "    wieght: 3\n", []string{"line 8: field wieght not found"}},
		{"bad duration", base + "    health: { path: /h, interval: soon }\n", []string{`line 8: bad duration "soon"`}},
		{"wrong type", base + "    sticky: maybe\n", []string{"line 8", "bool"}},
		{"empty", "", []string{"route file is empty"}},
		{"all problems at once", `
admin: 10.0.0.1:9100
production: 127.0.0.1:8080
test: 127.0.0.1:8080
apps:
  Shop_1:
    hosts: ["bad host"]
    fleets:
      blue: { weight: 150, targets: ["nohost"] }
      green: { weight: 10, targets: [] }
    test_fleet: purple
    health: { path: healthz, interval: 1s, timeout: 2s }
`, []string{
			`admin: "10.0.0.1:9100" must be a loopback address or a unix socket`,
			"apps.Shop_1: app name must be 1-63 characters",
			"apps.Shop_1: production and test listeners are the same address 127.0.0.1:8080",
			`apps.Shop_1.hosts[0]: "bad host" is not a host name`,
			"apps.Shop_1.fleets.blue.weight: 150 is out of range 0..100",
			`apps.Shop_1.fleets.blue.targets[0]: "nohost" is not host:port`,
			"apps.Shop_1.fleets.green: has weight 10 but no targets",
			`apps.Shop_1.test_fleet: no fleet named "purple"`,
			"apps.Shop_1.health.path: must start with /",
			"apps.Shop_1.health.timeout: 2s must be above zero and at most the interval 1s",
		}},
		{"host claimed twice", `
production: 127.0.0.1:8080
apps:
  a: { hosts: ["x.example.com"], fleets: { blue: { weight: 1, targets: ["127.0.0.1:1"] } } }
  b: { hosts: ["x.example.com"], fleets: { blue: { weight: 1, targets: ["127.0.0.1:2"] } } }
`, []string{`apps.b: host "x.example.com" on 127.0.0.1:8080 is claimed by app a and by app b`}},
		{"listener used both ways", `
production: 127.0.0.1:8080
apps:
  a: { test: 127.0.0.1:9000, fleets: { blue: { weight: 1, targets: ["127.0.0.1:1"] } } }
  b: { production: 127.0.0.1:9000, fleets: { blue: { weight: 1, targets: ["127.0.0.1:2"] } } }
`, []string{"apps.b: 127.0.0.1:9000 cannot be the production listener of app b: it is the test listener of app a"}},
		{"fenced target not in fleet", base + "    fleets:\n      blue: { weight: 1, targets: [\"127.0.0.1:1\"], fenced_targets: [\"127.0.0.1:2\"] }\n",
			[]string{"mapping key \"fleets\" already defined"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseYAML([]byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestFencedTargetMustBelongToFleet(t *testing.T) {
	_, err := ParseJSON([]byte(`{"production":"127.0.0.1:1","apps":{"a":{"fleets":{"blue":{"weight":1,"targets":["127.0.0.1:2"],"fenced_targets":["127.0.0.1:3"]}}}}}`))
	if err == nil || !strings.Contains(err.Error(), "apps.a.fleets.blue.fenced_targets[0]: 127.0.0.1:3 is not one of the fleet's targets") {
		t.Fatalf("got %v", err)
	}
}

func TestLoadFileNamesTheFile(t *testing.T) {
	p := t.TempDir() + "/routes.yaml"
	os.WriteFile(p, []byte("apps: {}\nnope: 1\n"), 0o600)
	_, err := LoadFile(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+": ") || !strings.Contains(err.Error(), "line 2: field nope not found") {
		t.Fatalf("got %v", err)
	}
}

func FuzzParseRouteFile(f *testing.F) {
	seed, _ := os.ReadFile("../../examples/router/routes.yaml")
	f.Add(seed)
	f.Add([]byte("apps: {a: {fleets: {blue: {weight: 5, targets: ['[::1]:80']}}}}\nproduction: '[::1]:8080'"))
	f.Add([]byte(`{"production":"127.0.0.1:1","apps":{"a":{"hosts":["*.x"],"fleets":{"b":{"weight":100,"targets":["127.0.0.1:2"]}}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, parse := range []func([]byte) (*Config, error){ParseYAML, ParseJSON} {
			cfg, err := parse(data)
			if err != nil {
				continue
			}
			// A table that validates once validates again, and compiles.
			again := cfg.clone()
			if err := again.Validate(); err != nil {
				t.Fatalf("valid table failed a second validation: %v", err)
			}
			r := New(Options{})
			tbl := r.build(again, nil)
			for _, a := range tbl.apps {
				a.pickFleet(nanotime())
			}
		}
	})
}

// FuzzHeaderHandling drives arbitrary header names and values through the
// host lookup, request ID, upgrade and response-header cleaning code.
func FuzzHeaderHandling(f *testing.F) {
	f.Add("X-Forwarded-For", "1.2.3.4", "shop.example.com:80", "abc-123")
	f.Add("Connection", "X-A, close", "*.example.com", "")
	f.Add("Upgrade", "websocket", "[::1]:8080", "\x00\xff")
	f.Fuzz(func(t *testing.T, k, v, host, id string) {
		api := &app{name: "api", prefix: "/api", strip: true}
		lr := &listenerRoutes{exact: map[string]*hostRoutes{"shop.example.com": {root: &app{name: "a"}, prefixed: []prefixRoute{{"/api", api}}}},
			wild: []wildRoute{{".example.com", &hostRoutes{root: &app{name: "w"}}}}, paths: true}
		if a := lr.lookup(host, v); a == api {
			if up := string(api.upstreamTarget([]byte(v))); !strings.HasPrefix(up, "/") {
				t.Fatalf("upstream target %q of %q", up, v)
			}
		}
		got := requestID([]byte(id))
		if got == "" || len(got) > 128 || strings.ContainsAny(got, "\r\n ") {
			t.Fatalf("request ID %q from %q", got, id)
		}
		var rq fasthttp.RequestHeader
		rq.Set(k, v)
		upgradeType(&rq)
		var rs fasthttp.ResponseHeader
		rs.Set(k, v)
		rs.Set("Connection", "keep-alive")
		cleanResponseHeader(&rs)
		if len(rs.Peek("Keep-Alive")) != 0 || len(rs.Peek("Upgrade")) != 0 {
			t.Fatal("hop-by-hop header kept")
		}
	})
}
