package api

import "testing"

// Roles follow the deployment, not the slots, which alternate.
func TestAssignRoles(t *testing.T) {
	cases := []struct {
		name      string
		dep       *Deployment
		fleets    []FleetStatus
		wantRoles map[string]string // slot → role
	}{
		{"no deployment: the live fleet is blue", nil,
			[]FleetStatus{{Name: "green", Revision: 3, Live: true}}, map[string]string{"green": "blue"}},
		{"shifting from the green slot to the blue slot", &Deployment{FromRevision: 3, ToRevision: 4},
			[]FleetStatus{{Name: "green", Revision: 3, Live: true}, {Name: "blue", Revision: 4}},
			map[string]string{"green": "blue", "blue": "green"}},
		{"retiring: the candidate is live already and stays green", &Deployment{FromRevision: 3, ToRevision: 4},
			[]FleetStatus{{Name: "blue", Revision: 4, Live: true}, {Name: "green", Revision: 3}},
			map[string]string{"blue": "green", "green": "blue"}},
		{"first deployment: only green", &Deployment{ToRevision: 1},
			[]FleetStatus{{Name: "green", Revision: 1}}, map[string]string{"green": "green"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := Status{App: App{Deployment: c.dep}, Fleets: c.fleets}
			assignRoles(&st)
			for _, f := range st.Fleets {
				if f.Role != c.wantRoles[f.Name] {
					t.Errorf("slot %s: role %q, want %q", f.Name, f.Role, c.wantRoles[f.Name])
				}
			}
		})
	}
}
