package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/runas"
	"bluegreen/internal/spec"
)

// checkRunAs refuses a spec whose run_as the server cannot or will not
// arrange, as a problem at run_as, so that a deploy says so at once
// instead of failing at its first launch.
func (e *Engine) checkRunAs(s *spec.Spec) error {
	if e.opts.RunAs == nil {
		return nil
	}
	err := e.opts.RunAs.Check(s.App, s.RunAs)
	var refused *runas.Refusal
	if errors.As(err, &refused) {
		return s.Problem("run_as", "%s", refused.Error())
	}
	if err != nil {
		return err
	}
	// A container's user is one of the image's, not the host's: only root
	// (uid 0 is the host's root, without a user namespace) needs the
	// server's leave.
	for _, m := range s.Members() {
		if m.Docker != nil && rootUser(m.Docker.User) && !e.opts.RunAs.AllowsRoot() {
			at := "docker.user"
			if m.Name != "" {
				at = "services." + m.Name + ".docker.user"
			}
			return s.Problem(at, "this server does not let apps run as root (bluegreen server --allow-run-as root allows it); remove docker.user to run as a user of the app's own, or name a user other than root")
		}
	}
	return nil
}

// rootUser says whether a container user ("uid", "uid:gid", "name",
// "name:group") is root by name or number.
func rootUser(u string) bool {
	name, _, _ := strings.Cut(u, ":")
	return name == "root" || strings.TrimLeft(name, "0") == "" && name != ""
}

// userOf returns who r's instances and hooks run as (nil: as the server),
// with r's directory made (if need be) and opened to that user alone.
func (e *Engine) userOf(r *revision) (*platform.User, error) {
	if e.opts.RunAs == nil {
		return nil, nil
	}
	u, err := e.opts.RunAs.Resolve(r.App, r.Spec.RunAs)
	if err != nil {
		return nil, fmt.Errorf("revision %d of app %s: run_as: %w", r.Generation, r.App, err)
	}
	if err := e.opts.RunAs.PrepareRevisionDir(e.revisionDir(r.App, r.Generation), u); err != nil {
		return nil, fmt.Errorf("revision %d of app %s: opening its directory to %s: %w", r.Generation, r.App, u, err)
	}
	return &u, nil
}

// execute runs a hook's or a command check's command as green's user,
// with the known secrets hidden in its output.
func (e *Engine) execute(ctx context.Context, s *state, c command) commandResult {
	return e.executeAs(ctx, s.green, c)
}

// executeAs runs a command for revision r (green's, or a retiring blue's
// application_stop) as r's user, with the known secrets hidden in its
// output.
func (e *Engine) executeAs(ctx context.Context, r *revision, c command) commandResult {
	u, err := e.userOf(r)
	if err != nil {
		return commandResult{ExitCode: -1, Err: err}
	}
	red, err := e.opts.Params.Redactor(ctx, e.opts.Secrets...)
	if err != nil {
		return commandResult{ExitCode: -1, Err: err}
	}
	c.User, c.Redact, c.Started = u, red, e.trackGroup
	if u != nil {
		c.Credential = e.opts.RunAs.Credential(*u)
	}
	return runCommand(ctx, c)
}
