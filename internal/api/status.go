package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	"bluegreen/internal/engine"
	"bluegreen/internal/platform"
	"bluegreen/internal/store"
)

// Status is what `bluegreen status` shows of an app: the app with its
// active deployment, where that deployment stands and what comes next, and
// each fleet's traffic, health and instances over a recent window.
type Status struct {
	App
	// Window is how far back the fleets' numbers look ("10s" or "1m").
	Window string        `json:"window"`
	Fleets []FleetStatus `json:"fleets"`
	// Progress is set while a deployment is active.
	Progress *Progress `json:"progress,omitempty"`
	// LastDeployment is the app's latest deployment when none is active:
	// how it ended, and why.
	LastDeployment *Deployment `json:"last_deployment,omitempty"`
	// Services are a stack's services, in dependency order: each with its
	// fleets as the router saw that service (absent for an app of one
	// service). A stack's Fleets add its services up.
	Services []ServiceStatus `json:"services,omitempty"`
	// Certificates are the app's HTTPS certificates, one per host: where
	// each stands, and why one that cannot be used cannot.
	Certificates []CertificateStatus `json:"certificates,omitempty"`
}

// ServiceStatus is one service of a stack: where it answers, each fleet's
// copy of it (traffic, health, instances, the address the stack's other
// services reach it at) and its rules in the latest check evaluation.
type ServiceStatus struct {
	Name string `json:"name"`
	// Public: it answers on the stack's listeners at Path; an internal
	// service is reached only by the stack's other services.
	Public bool   `json:"public"`
	Path   string `json:"path,omitempty"`
	// LiveAddress reaches the live fleet's copy of the service, whatever
	// its colour: the address for callers outside the stack.
	LiveAddress string        `json:"live_address,omitempty"`
	Fleets      []FleetStatus `json:"fleets"`
	// Checks are its rules' verdicts in the active deployment's latest
	// check evaluation.
	Checks []Check `json:"checks,omitempty"`
}

// Check is one rule's verdict with the numbers it saw.
type Check struct {
	Rule    string  `json:"rule"`
	Verdict string  `json:"verdict"`
	Green   float64 `json:"green"`
	Blue    float64 `json:"blue,omitempty"`
	Limit   float64 `json:"limit,omitempty"`
	Detail  string  `json:"detail"`
}

// Progress is where an active deployment stands in its strategy and what it
// does next.
type Progress struct {
	Step    int    `json:"step"`  // the step being carried out, 0-based
	Steps   int    `json:"steps"` // the strategy's steps
	Weight  int    `json:"weight"`
	Waiting string `json:"waiting,omitempty"` // pause, promote, checks
	// Next says what happens next, at NextAt when it has a time.
	Next   string     `json:"next,omitempty"`
	NextAt *time.Time `json:"next_at,omitempty"`
}

// FleetStatus is one fleet of an app as the router and the platform see it.
type FleetStatus struct {
	Name string `json:"name"` // the slot: blue or green
	// Role is how people speak of the fleet, whatever its slot: "blue" for
	// the live fleet (the one a deployment started from), "green" for the
	// candidate. The slots alternate from deployment to deployment; the
	// roles do not.
	Role     string `json:"role"`
	Revision int64  `json:"revision,omitempty"`
	Live     bool   `json:"live"` // the app's live fleet
	// Weight is its share of production traffic in percent; Fenced: it
	// takes no new requests; Test: the test listener serves it.
	Weight  int  `json:"weight"`
	Fenced  bool `json:"fenced,omitempty"`
	Test    bool `json:"test,omitempty"`
	Healthy int  `json:"healthy_targets"`
	Targets int  `json:"targets"`
	// Over the window: requests, requests per second, share of 5xx, p99.
	Requests    uint64           `json:"requests"`
	RequestRate float64          `json:"request_rate"`
	ErrorRate   float64          `json:"error_rate"`
	P99Seconds  float64          `json:"p99_seconds"`
	Instances   []InstanceStatus `json:"instances"`
	// Address is where the stack's other services of this fleet reach a
	// service (${services.NAME.url}); only in a service's fleets.
	Address string `json:"address,omitempty"`
}

// InstanceStatus is an instance with its health as the router judges it
// (Healthy is nil while the router does not route to it).
type InstanceStatus struct {
	Instance
	Healthy *bool `json:"healthy,omitempty"`
}

// statusWindows are the windows status looks over.
var statusWindows = map[string]time.Duration{"10s": 10 * time.Second, "1m": time.Minute}

// getStatus answers GET /api/v1/apps/{app}/status?window=10s|1m.
func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) {
	app, err := appName(r)
	if err != nil {
		writeError(w, err)
		return
	}
	window, span, err := statusWindow(r)
	if err != nil {
		writeError(w, err)
		return
	}
	a, err := s.Store.GetApp(r.Context(), app)
	if err != nil {
		writeError(w, err)
		return
	}
	x, err := s.appOf(r, a)
	if err != nil {
		writeError(w, err)
		return
	}
	out := Status{App: x, Window: window, Fleets: []FleetStatus{}}
	if x.Gate != nil && x.Gate.State == GatePaused {
		// What the router holds; a router that does not answer leaves it out.
		if n, err := s.Engine.Held(r.Context(), app); err == nil {
			out.Gate.Held = &n
		}
	}
	var checks []engine.RuleResult
	if x.Deployment != nil {
		if out.Progress, checks, err = s.progress(r.Context(), x.Deployment.ID); err != nil {
			writeError(w, err)
			return
		}
	} else if ds, err := s.Store.ListDeployments(r.Context(), app, false, 1); err == nil && len(ds) > 0 {
		last := deploymentOf(ds[0])
		out.LastDeployment = &last
	}
	if out.Fleets, err = s.fleets(r.Context(), a, span); err != nil {
		writeError(w, err)
		return
	}
	assignRoles(&out)
	if s.Certificates != nil {
		out.Certificates = s.Certificates(r.Context(), app)
	}
	if out.Services, err = s.services(r.Context(), a, span, out.Fleets, checks); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// services puts the router's view of each service of a stack together with
// its instances, in the order and with the roles of the app's fleets.
func (s *Server) services(ctx context.Context, a store.App, span time.Duration, fleets []FleetStatus, checks []engine.RuleResult) ([]ServiceStatus, error) {
	views, err := s.Engine.Services(ctx, a.Name, span)
	if err != nil || len(views) == 0 {
		return nil, err
	}
	var out []ServiceStatus
	for _, v := range views {
		ss := ServiceStatus{Name: v.Name, Public: v.Public, Fleets: []FleetStatus{}}
		if v.Public {
			ss.Path = v.Path
		}
		if addr := v.Addresses["live"]; addr != "" {
			ss.LiveAddress = "http://" + addr
		}
		for _, whole := range fleets {
			fm, routed := v.Fleets[whole.Name]
			f := FleetStatus{Name: whole.Name, Role: whole.Role, Revision: whole.Revision, Live: whole.Live, Instances: []InstanceStatus{}}
			for _, in := range whole.Instances {
				if in.Service == v.Name {
					f.Instances = append(f.Instances, in)
				}
			}
			if !routed && len(f.Instances) == 0 {
				continue
			}
			if addr := v.Addresses[whole.Name]; addr != "" {
				f.Address = "http://" + addr
			}
			f.Weight, f.Fenced, f.Test = fm.Weight, fm.Fenced, fm.Test
			f.Healthy, f.Targets = fm.Healthy, len(fm.Targets)
			f.Requests, f.ErrorRate, f.P99Seconds = fm.Requests, fm.ErrorRate(), fm.P99.Seconds()
			f.RequestRate = float64(fm.Requests) / span.Seconds()
			ss.Fleets = append(ss.Fleets, f)
		}
		for _, c := range checks {
			if c.Service == v.Name {
				ss.Checks = append(ss.Checks, Check{Rule: c.Rule, Verdict: string(c.Verdict), Green: c.Green, Blue: c.Blue, Limit: c.Limit, Detail: c.Detail})
			}
		}
		out = append(out, ss)
	}
	return out, nil
}

// statusWindow reads ?window=, 10s when absent.
func statusWindow(r *http.Request) (string, time.Duration, error) {
	window := r.URL.Query().Get("window")
	if window == "" {
		window = "10s"
	}
	span, ok := statusWindows[window]
	if !ok {
		return "", 0, &Error{http.StatusBadRequest, CodeInvalid, fmt.Sprintf("query parameter window=%q: want 10s or 1m", window)}
	}
	return window, span, nil
}

// progress is where an active deployment stands, with its latest check
// evaluation (nil once it has ended).
func (s *Server) progress(ctx context.Context, id string) (*Progress, []engine.RuleResult, error) {
	o, err := s.Engine.Outlook(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	p := &Progress{Step: o.Step, Steps: o.Steps, Weight: o.Weight, Waiting: string(o.Waiting), Next: o.Next}
	if !o.At.IsZero() {
		at := o.At
		p.NextAt = &at
	}
	return p, o.Checks, nil
}

// fleets puts the router's view of the app's fleets together with the
// platform's instances: live fleet first, then by name.
func (s *Server) fleets(ctx context.Context, a store.App, span time.Duration) ([]FleetStatus, error) {
	m, err := s.Engine.Fleets(ctx, a.Name, span)
	if err != nil {
		return nil, err
	}
	ins, err := s.Engine.Instances(ctx, a.Name)
	if err != nil {
		return nil, err
	}
	return fleetStatuses(a, m, ins, span), nil
}

// fleetStatuses is fleets from what the router and the platform said.
func fleetStatuses(a store.App, m map[string]engine.FleetMetrics, ins []platform.Instance, span time.Duration) []FleetStatus {
	byName := map[string]*FleetStatus{}
	fleet := func(name string) *FleetStatus {
		if f := byName[name]; f != nil {
			return f
		}
		f := &FleetStatus{Name: name, Live: name == a.LiveSlot, Instances: []InstanceStatus{}}
		byName[name] = f
		return f
	}
	health := map[string]bool{}
	for name, fm := range m {
		f := fleet(name)
		f.Revision, _ = strconv.ParseInt(fm.Revision, 10, 64)
		f.Weight, f.Fenced, f.Test = fm.Weight, fm.Fenced, fm.Test
		f.Healthy, f.Targets = fm.Healthy, len(fm.Targets)
		f.Requests, f.ErrorRate, f.P99Seconds = fm.Requests, fm.ErrorRate(), fm.P99.Seconds()
		f.RequestRate = float64(fm.Requests) / span.Seconds()
		for _, t := range fm.Targets {
			health[t.Address] = t.Healthy
		}
	}
	for _, in := range ins {
		f := fleet(in.Fleet)
		if f.Revision == 0 {
			f.Revision = in.Revision
		}
		x := InstanceStatus{Instance: instanceOf(in)}
		if h, ok := health[in.Address]; ok && in.Revision == f.Revision {
			x.Healthy = &h
		}
		f.Instances = append(f.Instances, x)
	}
	out := make([]FleetStatus, 0, len(byName))
	for _, f := range byName {
		sort.Slice(f.Instances, func(i, j int) bool { return f.Instances[i].ID < f.Instances[j].ID })
		out = append(out, *f)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Live != out[j].Live {
			return out[i].Live
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func instanceOf(in platform.Instance) Instance {
	x := Instance{ID: in.ID, Revision: in.Revision, Fleet: in.Fleet, Service: in.Service, Address: in.Address, State: string(in.State), PID: in.PID, StartedAt: in.StartedAt,
		Platform: in.Platform, Container: in.Container, Detail: in.Detail}
	if in.State == platform.StateExited {
		code := in.ExitCode
		x.ExitCode = &code
	}
	return x
}

// Status reads what `bluegreen status` shows of an app, with numbers over
// window ("10s" or "1m"; "" for 10s).
func (c *Client) Status(ctx context.Context, app, window string) (Status, error) {
	var out Status
	path := "/api/v1/apps/" + url.PathEscape(app) + "/status"
	if window != "" {
		path += "?window=" + url.QueryEscape(window)
	}
	err := c.doJSON(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// assignRoles names the fleets by role: green is the active deployment's
// candidate, blue the live fleet (or the one the deployment started from);
// with no deployment, the live fleet is blue.
func assignRoles(st *Status) {
	var blue, green *FleetStatus
	for i := range st.Fleets {
		f := &st.Fleets[i]
		switch {
		case st.Deployment != nil && f.Revision == st.Deployment.ToRevision && green == nil:
			green = f
		case f.Live && blue == nil:
			blue = f
		case st.Deployment != nil && st.Deployment.FromRevision > 0 && f.Revision == st.Deployment.FromRevision && blue == nil:
			blue = f
		case st.Deployment == nil && blue == nil:
			blue = f
		}
	}
	if blue != nil {
		blue.Role = "blue"
	}
	if green != nil {
		green.Role = "green"
	}
}
