package spec

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseStack(t *testing.T) {
	s, err := ParseFile("testdata/stack.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !s.IsStack() || s.Process != nil || s.Docker != nil {
		t.Fatalf("want a stack without a run section of its own: %+v", s)
	}
	ms := s.Members()
	var order []string
	for _, m := range ms {
		order = append(order, m.Name)
	}
	if want := []string{"db", "api", "web"}; !reflect.DeepEqual(order, want) {
		t.Fatalf("members in order %v, want %v", order, want)
	}
	db, api, web := ms[0], ms[1], ms[2]
	if db.Public || !api.Public || !web.Public {
		t.Errorf("public: db %v, api %v, web %v; want false, true, true", db.Public, api.Public, web.Public)
	}
	if web.Router.Production != "127.0.0.1:8090" || web.Router.Test != "127.0.0.1:8091" || web.Router.Path != "/" ||
		!reflect.DeepEqual(web.Router.Hosts, []string{"shop.example.com"}) {
		t.Errorf("web's router does not take the stack's: %+v", web.Router)
	}
	if api.Router.Path != "/api" || !api.Router.StripPrefix {
		t.Errorf("api's router: %+v", api.Router)
	}
	// Health: what a service sets is its own, the rest the stack's.
	if api.Health.Path != "/ready" || api.Health.Interval.D() != time.Second || api.Health.StartupTimeout.D() != 30*time.Second ||
		api.Health.HealthyThreshold != DefaultHealthyThreshold {
		t.Errorf("api's health: %+v", api.Health)
	}
	if web.Health.Path != DefaultHealthPath {
		t.Errorf("web's health path %q, want the stack's", web.Health.Path)
	}
	if web.Workload.Instances != 2 || api.Workload.Instances != 1 || web.Platform != PlatformProcess || api.Process.Dir != "." {
		t.Errorf("workloads: web %+v, api %+v", web.Workload, api.Workload)
	}
	if api.Hooks == nil || len(api.Hooks.ValidateService) != 1 || api.Hooks.ValidateService[0].Timeout.D() != DefaultHookTimeout {
		t.Errorf("api's hooks: %+v", api.Hooks)
	}
	if got := ServiceURLVar("order-db"); got != "ORDER_DB_URL" {
		t.Errorf("ServiceURLVar = %q", got)
	}
}

func TestStackRoundTrip(t *testing.T) {
	s, err := ParseFile("testdata/stack.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out, "printed")
	if err != nil {
		t.Fatalf("the printed stack does not parse: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(again.Members(), s.Members()) {
		t.Errorf("the printed stack differs:\n%s", out)
	}
	for _, absent := range []string{"\nprocess:", "\ndocker:"} {
		if strings.Contains(string(out), absent) {
			t.Errorf("the printed stack has a top-level section %q:\n%s", absent, out)
		}
	}
}

func TestMembersOfOne(t *testing.T) {
	s, err := Parse([]byte(base+"router: {production: 127.0.0.1:9000, hosts: [a.example]}\n"), FileName)
	if err != nil {
		t.Fatal(err)
	}
	ms := s.Members()
	if len(ms) != 1 || ms[0].Name != "" || !ms[0].Public || ms[0].Router.Production != "127.0.0.1:9000" || ms[0].Router.Path != "/" ||
		!reflect.DeepEqual(ms[0].Workload, s.Workload()) || ms[0].Health != s.Health {
		t.Errorf("the one member: %+v", ms)
	}
}

func TestExpandServices(t *testing.T) {
	url := func(name string) (string, bool) {
		if name == "api" {
			return "http://127.0.0.1:20001", true
		}
		return "", false
	}
	for in, want := range map[string]string{
		"${services.api.url}/v1":      "http://127.0.0.1:20001/v1",
		"$${services.api.url}":        "$${services.api.url}",
		"${PORT} ${services.api.url}": "${PORT} http://127.0.0.1:20001",
		"${services.db.url}":          "${services.db.url}",
		"$1 $$ ${X}":                  "$1 $$ ${X}",
		"no refs":                     "no refs",
	} {
		if got := ExpandServices(in, url); got != want {
			t.Errorf("ExpandServices(%q) = %q, want %q", in, got, want)
		}
	}
}
