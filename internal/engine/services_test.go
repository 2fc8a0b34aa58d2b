package engine

import (
	"reflect"
	"testing"

	"bluegreen/internal/platform"
	"bluegreen/internal/router"
)

// The Services of an app select what the router would serve: production
// the fleet with the traffic (blue on a tie at the start, when neither has
// any), the test Service the test fleet, and one Service per role.
func TestSelectionOf(t *testing.T) {
	fleet := func(role string, weight, targets int) *router.FleetConfig {
		return &router.FleetConfig{Role: role, Weight: weight, Targets: make([]string, targets)}
	}
	cases := []struct {
		name string
		cfg  router.AppConfig
		want platform.ServiceSelection
	}{
		{"first deployment, validating", router.AppConfig{Fleets: map[string]*router.FleetConfig{"green": fleet(RoleGreen, 0, 2)}},
			platform.ServiceSelection{Green: "green", Want: map[string]int{"green": 2}}},
		{"green under test", router.AppConfig{TestFleet: "green", Fleets: map[string]*router.FleetConfig{
			"blue": fleet(RoleBlue, 100, 2), "green": fleet(RoleGreen, 0, 3)}},
			platform.ServiceSelection{Production: "blue", Test: "green", Blue: "blue", Green: "green", Want: map[string]int{"blue": 2, "green": 3}}},
		{"switched, slots swapped", router.AppConfig{Fleets: map[string]*router.FleetConfig{
			"green": fleet(RoleBlue, 0, 2), "blue": fleet(RoleGreen, 100, 2)}},
			platform.ServiceSelection{Production: "blue", Blue: "green", Green: "blue", Want: map[string]int{"blue": 2, "green": 2}}},
		{"rolled back", router.AppConfig{Fleets: map[string]*router.FleetConfig{"blue": fleet(RoleBlue, 100, 2)}},
			platform.ServiceSelection{Production: "blue", Blue: "blue", Want: map[string]int{"blue": 2}}},
	}
	for _, c := range cases {
		got := selectionOf(&c.cfg)
		got.Timeout = 0
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}
