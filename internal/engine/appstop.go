package engine

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"time"
)

// The application_stop event is CodeDeploy's ApplicationStop: the revision
// that goes away says how it stops. Its hooks therefore come from the spec
// of the fleet being stopped (blue's when it retires, green's when a
// rollback stops it) and run in that revision's own directory, with its own
// params, just before its instances are stopped. Every other event runs
// green's hooks (runHooks).

// stopHooksKey names a fleet's application_stop hooks in details.HooksDone;
// the role keeps blue's apart from green's within one deployment.
func stopHooksKey(role string) string { return "application_stop/" + role }

// runStopHooks runs the application_stop hooks of fleet f, whose role is
// RoleBlue or RoleGreen, once per deployment. A failure, of a hook or of
// what it needs (the revision's directory, its params), is recorded and
// passed over: the fleet is stopped anyway. Nothing runs when no instance
// of the fleet was ever started.
func (e *Engine) runStopHooks(ctx context.Context, s *state, f fleet, role string) error {
	hooks := hookRuns(f.rev.Spec, "application_stop")
	key := stopHooksKey(role)
	if len(hooks) == 0 || s.det.hookDone(key) {
		return nil
	}
	fs, err := e.observe(ctx, f)
	if err != nil {
		return err
	}
	if len(fs.running)+len(fs.exited) > 0 {
		if err := e.runStopHookList(ctx, s, f, role); err != nil {
			return err
		}
	}
	s.det.HooksDone = append(s.det.HooksDone, key)
	return e.save(ctx, s, change{})
}

// runStopHookList runs the hooks in order, recording each; only the
// deployment's own end (its context) stops it.
func (e *Engine) runStopHookList(ctx context.Context, s *state, f fleet, role string) error {
	base := map[string]any{"event": "application_stop", "role": role, "revision": f.rev.Generation}
	dir, env, err := e.stopHookSetting(ctx, s, f)
	if err != nil {
		e.event(ctx, s.d.App, s.d.ID, "hook.failed", fmt.Sprintf("hooks application_stop of revision %d (%s) not run: %v; passed over, the fleet stops anyway", f.rev.Generation, role, err),
			stopHookFields(base, map[string]any{"error": err.Error()}))
		return nil
	}
	for _, h := range hookRuns(f.rev.Spec, "application_stop") {
		henv := env
		extra := map[string]any{"index": h.index}
		if h.service != "" {
			henv = serviceHookEnv(env, h.service)
			extra["service"] = h.service
		}
		res := e.executeAs(ctx, f.rev, command{Run: h.Run, Dir: dir, Env: henv, Timeout: h.Timeout.D()})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		e.countHook(s.d.App, "application_stop", res)
		fields := stopHookFields(base, extra)
		maps.Copy(fields, map[string]any{"run": h.Run, "exit_code": res.ExitCode,
			"timed_out": res.TimedOut, "seconds": res.Took.Seconds(), "output": res.Output})
		label := h.label("application_stop")
		if res.Err != nil {
			e.event(ctx, s.d.App, s.d.ID, "hook.failed", fmt.Sprintf("hook %s of revision %d (%s) failed: %v; passed over, the fleet stops anyway", label, f.rev.Generation, role, res.Err), fields)
			continue
		}
		e.event(ctx, s.d.App, s.d.ID, "hook.succeeded", fmt.Sprintf("hook %s of revision %d (%s) succeeded in %s", label, f.rev.Generation, role, res.Took.Round(time.Millisecond)), fields)
	}
	return nil
}

// stopHookSetting is where and with what environment the fleet's
// application_stop hooks run: its revision's directory, and the deployment's
// variables with that revision's params and number.
func (e *Engine) stopHookSetting(ctx context.Context, s *state, f fleet) (string, map[string]string, error) {
	dir, err := e.unpack(f.rev)
	if err != nil {
		return "", nil, err
	}
	env, err := e.commandEnv(ctx, s, "application_stop")
	if err != nil {
		return "", nil, err
	}
	if f.rev == s.green {
		return dir, env, nil
	}
	// commandEnv gives green's params: blue's hooks get blue's.
	green, err := e.opts.Params.Resolve(ctx, s.green.Params)
	if err != nil {
		return "", nil, fmt.Errorf("revision %d of app %s: %w", s.green.Generation, s.green.App, err)
	}
	for k := range green {
		delete(env, k)
	}
	own, err := e.opts.Params.Resolve(ctx, f.rev.Params)
	if err != nil {
		return "", nil, fmt.Errorf("revision %d of app %s: %w", f.rev.Generation, f.rev.App, err)
	}
	for k, v := range own {
		env[k] = v.Reveal()
	}
	env["BG_REVISION"] = strconv.FormatInt(f.rev.Generation, 10)
	return dir, env, nil
}

// stopHookFields is an event's fields: a copy of a with b's added.
func stopHookFields(a, b map[string]any) map[string]any {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}
