package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	"bluegreen/internal/params"
	"bluegreen/internal/platform/runas"
	"bluegreen/internal/spec"
)

// hookList returns the hooks of a lifecycle event in a hooks section.
func hookList(h *spec.Hooks, event string) []spec.Hook {
	if h == nil {
		return nil
	}
	for _, ev := range h.Events() {
		if ev.Name == event {
			return ev.Hooks
		}
	}
	return nil
}

// hookRun is one hook of an event: the stack's own (service "") or a
// service's.
type hookRun struct {
	spec.Hook
	service string
	index   int
}

// label names the hook in messages: "validate_service[0]", or
// "services.api.validate_service[0]" for a service's own.
func (h hookRun) label(event string) string {
	if h.service == "" {
		return fmt.Sprintf("%s[%d]", event, h.index)
	}
	return fmt.Sprintf("services.%s.%s[%d]", h.service, event, h.index)
}

// hookRuns lists the hooks of an event in s: the stack's own, then each
// service's in dependency order (in reverse for application_stop, as
// services stop: a front end before the back end it calls).
func hookRuns(s *spec.Spec, event string) []hookRun {
	var out []hookRun
	for i, h := range hookList(&s.Hooks, event) {
		out = append(out, hookRun{h, "", i})
	}
	ms := s.Members()
	if event == "application_stop" {
		slices.Reverse(ms)
	}
	for _, m := range ms {
		for i, h := range hookList(m.Hooks, event) {
			out = append(out, hookRun{h, m.Name, i})
		}
	}
	return out
}

// envSuffix turns a service's name into the end of a variable's name:
// ORDER_DB for "order-db".
func envSuffix(service string) string { return strings.ToUpper(strings.ReplaceAll(service, "-", "_")) }

// serviceHookEnv is what a service's own hooks get: env with BG_SERVICE
// set and the targets and containers of that service alone.
func serviceHookEnv(env map[string]string, service string) map[string]string {
	out := maps.Clone(env)
	sfx := envSuffix(service)
	out["BG_SERVICE"] = service
	for _, v := range []string{"BG_GREEN_TARGETS", "BG_BLUE_TARGETS", "BG_GREEN_CONTAINERS", "BG_BLUE_CONTAINERS"} {
		out[v] = env[v+"_"+sfx]
	}
	return out
}

// listenerURL turns a listener address into a URL a hook on this machine
// can reach: an empty or wildcard host means loopback.
func listenerURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// commandEnv is what hooks and command checks get: the pinned params of
// green's revision (those only: never another revision's or app's) and the
// deployment's BG_ variables.
func (e *Engine) commandEnv(ctx context.Context, s *state, event string) (map[string]string, error) {
	env := map[string]string{}
	pv, err := e.opts.Params.Resolve(ctx, s.green.Params)
	if err != nil {
		return nil, fmt.Errorf("revision %d of app %s: %w", s.green.Generation, s.green.App, err)
	}
	for k, v := range pv {
		env[k] = v.Reveal()
	}
	for _, name := range serverParams(s.green.Spec) {
		delete(env, params.EnvName(name))
	}
	gs, err := e.observe(ctx, s.greenFleet())
	if err != nil {
		return nil, err
	}
	var blueTargets, blueContainers []string
	if bf, ok := s.blueFleet(); ok {
		bs, err := e.observe(ctx, bf)
		if err != nil {
			return nil, err
		}
		blueTargets, blueContainers = bs.targets(), bs.containers()
	}
	env["BG_APP"] = s.d.App
	env["BG_DEPLOYMENT_ID"] = s.d.ID
	env["BG_REVISION"] = strconv.FormatInt(s.green.Generation, 10)
	env["BG_BLUE_REVISION"] = ""
	if s.blue != nil {
		env["BG_BLUE_REVISION"] = strconv.FormatInt(s.blue.Generation, 10)
	}
	env["BG_LIFECYCLE_EVENT"] = event
	if testServesGreen(s.d.Phase) {
		// Only once the test listener serves green: a hook must never be
		// given a URL that does not work at that moment.
		env["BG_TEST_URL"] = listenerURL(s.green.Spec.Router.Test)
	}
	env["BG_PRODUCTION_URL"] = listenerURL(frontSpec(s).Router.Production)
	env["BG_GREEN_TARGETS"] = strings.Join(gs.targets(), ",")
	env["BG_BLUE_TARGETS"] = strings.Join(blueTargets, ",")
	env["BG_GREEN_CONTAINERS"] = strings.Join(gs.containers(), ",")
	env["BG_BLUE_CONTAINERS"] = strings.Join(blueContainers, ",")
	if s.green.Spec.IsStack() {
		if err := e.stackEnv(ctx, s, env, gs); err != nil {
			return nil, err
		}
	}
	return env, nil
}

// stackEnv adds what the hooks of a stack get about each of its services:
// BG_SERVICES (in dependency order) and, per service (suffix API for
// "api"), BG_GREEN_TARGETS_API, BG_BLUE_TARGETS_API, the containers alike,
// and BG_GREEN_URL_API and BG_BLUE_URL_API, the service's addresses of
// each colour.
func (e *Engine) stackEnv(ctx context.Context, s *state, env map[string]string, gs fleetState) error {
	bf, hasBlue := s.blueFleet()
	var bs fleetState
	if hasBlue {
		var err error
		if bs, err = e.observe(ctx, bf); err != nil {
			return err
		}
	}
	var names []string
	for _, m := range s.green.Spec.Members() {
		names = append(names, m.Name)
		sfx := envSuffix(m.Name)
		env["BG_GREEN_TARGETS_"+sfx] = strings.Join(gs.of(m.Name).targets(), ",")
		env["BG_GREEN_CONTAINERS_"+sfx] = strings.Join(gs.of(m.Name).containers(), ",")
		addr, err := e.serviceAddr(ctx, s.d.App, m.Name, s.det.Slot)
		if err != nil {
			return err
		}
		env["BG_GREEN_URL_"+sfx] = "http://" + addr
		env["BG_BLUE_TARGETS_"+sfx], env["BG_BLUE_CONTAINERS_"+sfx], env["BG_BLUE_URL_"+sfx] = "", "", ""
		if !hasBlue {
			continue
		}
		bn, ok := counterpart(m.Name, s.green.Spec, s.blue.Spec)
		if !ok {
			continue
		}
		env["BG_BLUE_TARGETS_"+sfx] = strings.Join(bs.of(bn).targets(), ",")
		env["BG_BLUE_CONTAINERS_"+sfx] = strings.Join(bs.of(bn).containers(), ",")
		if s.blue.Spec.IsStack() {
			if addr, err = e.serviceAddr(ctx, s.d.App, bn, bf.slot); err != nil {
				return err
			}
			env["BG_BLUE_URL_"+sfx] = "http://" + addr
		}
	}
	env["BG_SERVICES"] = strings.Join(names, ",")
	return nil
}

// runHooks runs the hooks of a lifecycle event once per deployment: each
// in green's revision directory, as green's user, with its timeout, its
// output (known secrets hidden) recorded as an event. A failure is a reason to roll back (fail is false for on_rollback,
// whose failure is recorded and then passed over, since the rollback must
// still finish).
func (e *Engine) runHooks(ctx context.Context, s *state, event string, fail bool) error {
	hooks := hookRuns(s.green.Spec, event)
	if len(hooks) == 0 || s.det.hookDone(event) {
		return nil
	}
	dir, err := e.unpack(s.green)
	var refused *runas.Refusal
	if errors.As(err, &refused) {
		// The server will not run green's processes as its user (the
		// policy changed since the upload): that will not pass by itself.
		msg := fmt.Sprintf("hooks %s cannot run: %v", event, err)
		e.event(ctx, s.d.App, s.d.ID, "hook.failed", msg, map[string]any{"event": event})
		if fail {
			return rollbackf("%s", msg)
		}
		s.det.HooksDone = append(s.det.HooksDone, event)
		return e.save(ctx, s, change{})
	}
	if err != nil {
		return err
	}
	env, err := e.commandEnv(ctx, s, event)
	if err != nil {
		return err
	}
	for _, h := range hooks {
		henv := env
		if h.service != "" {
			henv = serviceHookEnv(env, h.service)
		}
		res := e.execute(ctx, s, command{Run: h.Run, Dir: dir, Env: henv, Timeout: h.Timeout.D()})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		e.countHook(s.d.App, event, res)
		fields := map[string]any{
			"event": event, "index": h.index, "run": h.Run, "exit_code": res.ExitCode,
			"timed_out": res.TimedOut, "seconds": res.Took.Seconds(), "output": res.Output,
		}
		if h.service != "" {
			fields["service"] = h.service
		}
		if res.Err != nil {
			e.event(ctx, s.d.App, s.d.ID, "hook.failed", fmt.Sprintf("hook %s failed: %v", h.label(event), res.Err), fields)
			if fail {
				return rollbackf("hook %s failed: %v", h.label(event), res.Err)
			}
			continue
		}
		e.event(ctx, s.d.App, s.d.ID, "hook.succeeded", fmt.Sprintf("hook %s succeeded in %s", h.label(event), res.Took.Round(1e6)), fields)
	}
	s.det.HooksDone = append(s.det.HooksDone, event)
	return e.save(ctx, s, change{})
}
