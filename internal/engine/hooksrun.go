package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"bluegreen/internal/params"
	"bluegreen/internal/platform/runas"
	"bluegreen/internal/spec"
)

// hookList returns the hooks of a lifecycle event in the green revision's spec.
func hookList(s *spec.Spec, event string) []spec.Hook {
	for _, ev := range s.Hooks.Events() {
		if ev.Name == event {
			return ev.Hooks
		}
	}
	return nil
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
	return env, nil
}

// runHooks runs the hooks of a lifecycle event once per deployment: each
// in green's revision directory, as green's user, with its timeout, its
// output (known secrets hidden) recorded as an event. A failure is a reason to roll back (fail is false for on_rollback,
// whose failure is recorded and then passed over, since the rollback must
// still finish).
func (e *Engine) runHooks(ctx context.Context, s *state, event string, fail bool) error {
	hooks := hookList(s.green.Spec, event)
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
	// A hook may take minutes: what the pass saw of the instances before
	// it is not taken for what runs after it.
	defer forgetListed(ctx, s.d.App)
	for i, h := range hooks {
		res := e.execute(ctx, s, command{Run: h.Run, Dir: dir, Env: env, Timeout: h.Timeout.D()})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fields := map[string]any{
			"event": event, "index": i, "run": h.Run, "exit_code": res.ExitCode,
			"timed_out": res.TimedOut, "seconds": res.Took.Seconds(), "output": res.Output,
		}
		if res.Err != nil {
			e.event(ctx, s.d.App, s.d.ID, "hook.failed", fmt.Sprintf("hook %s[%d] failed: %v", event, i, res.Err), fields)
			if fail {
				return rollbackf("hook %s[%d] failed: %v", event, i, res.Err)
			}
			continue
		}
		e.event(ctx, s.d.App, s.d.ID, "hook.succeeded", fmt.Sprintf("hook %s[%d] succeeded in %s", event, i, res.Took.Round(1e6)), fields)
	}
	s.det.HooksDone = append(s.det.HooksDone, event)
	return e.save(ctx, s, change{})
}
