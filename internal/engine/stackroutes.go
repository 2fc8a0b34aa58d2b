package engine

import (
	"context"

	"bluegreen/internal/router"
	"bluegreen/internal/spec"
)

// routePlan is what the router should serve of an app.
type routePlan struct {
	// front is the revision whose production settings (listeners, hosts,
	// paths, stickiness, preview header) are in force: the live one's
	// until green becomes live.
	front *revision
	// test is the spec whose test listener and hosts serve testFleet (nil:
	// front's).
	test      *spec.Spec
	fleets    []fleetPlan
	testFleet string
	// liveSlot is the fleet the live addresses of a stack's services serve
	// ("": the fleet of front's revision).
	liveSlot string
}

// routes is the router's view of an app: a router app per public route
// and, for a stack, per service and slot and per service's live address.
// It is a function of the plan alone (and of the addresses, which never
// change), so a resumed deployment pushes exactly what it pushed before.
func (e *Engine) routes(ctx context.Context, app string, p routePlan) (Routes, error) {
	if len(p.fleets) == 0 {
		return nil, nil
	}
	test := p.test
	if test == nil {
		test = p.front.Spec
	}
	secret, err := e.previewSecret(ctx, p.front)
	if err != nil {
		return nil, err
	}
	out := Routes{}

	// Public routes: one per public service, named as front names it; a
	// service front does not have (added by green, or dropped by it) has
	// its own.
	type group struct {
		settings, testSettings spec.Member
		parts                  []fleetRoute
		test                   bool
	}
	groups := map[string]*group{}
	var keys []string
	for _, f := range p.fleets {
		for _, m := range f.rev.Spec.Members() {
			if !m.Public {
				continue
			}
			key, ok := counterpart(m.Name, f.rev.Spec, p.front.Spec)
			if !ok {
				key = m.Name
			}
			g := groups[key]
			if g == nil {
				g = &group{settings: m, testSettings: m}
				if fm, ok := p.front.Spec.Member(key); ok && fm.Public {
					g.settings, g.testSettings = fm, fm
				}
				if tk, ok := counterpart(key, p.front.Spec, test); ok {
					if tm, _ := test.Member(tk); tm.Public {
						g.testSettings = tm
					}
				}
				groups[key] = g
				keys = append(keys, key)
			}
			g.parts = append(g.parts, f.part(m))
			g.test = g.test || f.slot == p.testFleet
		}
	}
	for _, key := range keys {
		g := groups[key]
		tf := ""
		if g.test {
			tf = p.testFleet
		}
		name := publicName(app, key)
		cfg := appRoute(p.front.Spec, g.settings, g.testSettings, g.parts, tf)
		if cfg.Sticky && name != app {
			// One cookie for every public service of the stack: its value
			// is the fleet, so a client pinned to blue gets blue's pages
			// and blue's API answers alike.
			cfg.StickyCookie = "bg_" + app
		}
		cfg.PreviewSecret = secret
		cfg.TLS = e.routeTLS(p.front.Spec.Router.TLS)
		if cfg.Test != "" {
			setTestTLS(cfg, e.routeTLS(test.Router.TLS))
		}
		out[name] = cfg
	}

	// A stack's addresses: per service and slot, and the live ones.
	liveSlot := p.liveSlot
	for _, f := range p.fleets {
		if liveSlot == "" && f.rev == p.front {
			liveSlot = f.slot
		}
	}
	for _, f := range p.fleets {
		if !f.rev.Spec.IsStack() {
			continue
		}
		for _, m := range f.rev.Spec.Members() {
			addr, err := e.serviceAddr(ctx, app, m.Name, f.slot)
			if err != nil {
				return nil, err
			}
			out[internalName(app, m.Name, f.slot)] = internalRoute(addr, m, f)
			if f.slot != liveSlot {
				continue
			}
			if addr, err = e.serviceAddr(ctx, app, m.Name, liveAddress); err != nil {
				return nil, err
			}
			out[internalName(app, m.Name, liveAddress)] = internalRoute(addr, m, f)
		}
	}
	return out, nil
}

// internalRoute serves one fleet of a service, alone, on one address.
// It is never fenced by the plan: green's (or blue's) own calls keep
// reaching the fleet's back end while its front end drains; the back end
// is drained after its callers.
func internalRoute(addr string, m spec.Member, f fleetPlan) *router.AppConfig {
	part := f.part(m)
	part.weight, part.fenced, part.role = 100, false, ""
	front := m
	front.Router = spec.ServiceRouter{Production: addr, Path: spec.DefaultPath}
	cfg := appRoute(&spec.Spec{}, front, front, []fleetRoute{part}, "")
	cfg.Test = ""
	return cfg
}
