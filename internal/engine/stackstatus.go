package engine

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"bluegreen/internal/spec"
	"bluegreen/internal/store"
)

// stackView is what runs of an app that is a stack (or is becoming one, or
// was one): its fleets, and the spec whose names and public settings are
// in force.
type stackView struct {
	fleets []fleet
	front  *spec.Spec
}

// stackView returns the app's fleets when either of them is a stack, nil
// otherwise.
func (e *Engine) stackView(ctx context.Context, app string) (*stackView, error) {
	d, err := e.st.ActiveDeployment(ctx, app)
	switch {
	case err == nil:
		s, err := e.loadState(ctx, d.ID)
		if err != nil {
			return nil, err
		}
		if !s.isStack() {
			return nil, nil
		}
		v := &stackView{fleets: []fleet{s.greenFleet()}, front: frontSpec(s)}
		if bf, ok := s.blueFleet(); ok {
			v.fleets = append(v.fleets, bf)
		}
		return v, nil
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	a, err := e.st.GetApp(ctx, app)
	if err != nil {
		return nil, err
	}
	live, ok, err := e.liveFleet(ctx, a)
	if err != nil || !ok || !live.rev.Spec.IsStack() {
		return nil, err
	}
	return &stackView{fleets: []fleet{live}, front: live.rev.Spec}, nil
}

// stackFleetMetrics is one fleet of a stack as a whole: its services'
// numbers added up (each as the router saw it, calls between them
// included), its weight and test listener as its public routes have them,
// and every instance of it once, with its health.
func stackFleetMetrics(all map[string]map[string]FleetMetrics, app string, f fleet, front *spec.Spec) (FleetMetrics, bool) {
	out := FleetMetrics{Revision: strconv.FormatInt(f.rev.Generation, 10)}
	var parts []FleetMetrics
	routed := false
	for _, m := range f.rev.Spec.Members() {
		mm, ok := memberMetrics(all, app, f, m, front)
		if !ok {
			continue
		}
		parts = append(parts, mm)
		if m.Public && !routed {
			out.Weight, out.Test, out.Fenced, routed = mm.Weight, mm.Test, mm.Fenced, true
		}
		ts := targetsOf(all, app, f, m.Name, front)
		out.Targets = append(out.Targets, ts...)
		for _, t := range ts {
			if t.Healthy && !t.Suspect && !t.Fenced {
				out.Healthy++
			}
		}
	}
	if len(parts) == 0 {
		return FleetMetrics{}, false
	}
	sum := sumMetrics(parts)
	out.Requests, out.Errors, out.P50, out.P95, out.P99 = sum.Requests, sum.Errors, sum.P50, sum.P95, sum.P99
	return out, true
}

// ServiceView is one service of a stack as people watch it: where it
// answers, and what the router saw of each fleet's copy of it.
type ServiceView struct {
	Name   string
	Public bool
	Path   string
	// Fleets are by slot; Addresses by slot, and liveAddress for the
	// address that follows the live fleet.
	Fleets    map[string]FleetMetrics
	Addresses map[string]string
}

// Services reads a stack's services over the last window, in dependency
// order of the spec in force; nil for an app of one service.
func (e *Engine) Services(ctx context.Context, app string, window time.Duration) ([]ServiceView, error) {
	v, err := e.stackView(ctx, app)
	if err != nil || v == nil {
		return nil, err
	}
	all, err := e.opts.Traffic.AppMetrics(ctx, app, window)
	if err != nil {
		return nil, err
	}
	var out []ServiceView
	var names []string
	add := func(m spec.Member) *ServiceView {
		if slices.Contains(names, m.Name) {
			return &out[slices.Index(names, m.Name)]
		}
		names = append(names, m.Name)
		out = append(out, ServiceView{Name: m.Name, Public: m.Public, Path: m.Router.Path, Fleets: map[string]FleetMetrics{}, Addresses: map[string]string{}})
		return &out[len(out)-1]
	}
	if v.front.IsStack() {
		for _, m := range v.front.Members() {
			add(m)
		}
	}
	for _, f := range v.fleets {
		for _, m := range f.rev.Spec.Members() {
			name, ok := counterpart(m.Name, f.rev.Spec, v.front)
			if !ok || name == "" {
				name = m.Name
			}
			if name == "" {
				continue // an app of one service beside a stack: the stack names it
			}
			named := m
			named.Name = name
			sv := add(named)
			if mm, ok := memberMetrics(all, app, f, m, v.front); ok {
				sv.Fleets[f.slot] = mm
			}
			if f.rev.Spec.IsStack() {
				if addr, err := e.serviceAddr(ctx, app, m.Name, f.slot); err == nil {
					sv.Addresses[f.slot] = addr
				}
			}
		}
	}
	if v.front.IsStack() {
		for i := range out {
			if addr, err := e.serviceAddr(ctx, app, out[i].Name, liveAddress); err == nil {
				out[i].Addresses[liveAddress] = addr
			}
		}
	}
	return out, nil
}
