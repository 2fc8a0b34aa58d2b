package engine

import (
	"strings"
	"time"

	"bluegreen/internal/metrics"
	"bluegreen/internal/store"
)

// Causes of rollbacks, as the server's metrics label them: a bounded set,
// never the reason's own words (which name instances, rules and numbers).
const (
	CauseRequested        = "requested"           // abort, or rollback while blue was warm
	CauseChecksFailed     = "checks_failed"       // failure_limit failed evaluations in a row
	CauseChecksStalled    = "checks_inconclusive" // inconclusive evaluations, then rollback or nobody came
	CauseHookFailed       = "hook_failed"         // a lifecycle hook failed or could not run
	CauseUnhealthy        = "unhealthy"           // green never became healthy, or a target failed its check
	CauseInstanceExited   = "instance_exited"     // a green instance exited, or fewer are running
	CauseApprovalTimeout  = "approval_timeout"    // nobody approved in time
	CauseProgressDeadline = "progress_deadline"   // a phase did not move on, or kept failing
	CauseRouterRefused    = "router_refused"      // the router refused the app's routes
	CauseImageUnavailable = "image_unavailable"   // the platform cannot have green's image
	CauseOther            = "other"
)

// Causes lists every cause, for documentation and tests.
var Causes = []string{CauseRequested, CauseChecksFailed, CauseChecksStalled, CauseHookFailed, CauseUnhealthy,
	CauseInstanceExited, CauseApprovalTimeout, CauseProgressDeadline, CauseRouterRefused, CauseImageUnavailable, CauseOther}

// rollbackCause classifies a rollback's reason. The reasons are the
// engine's own sentences (see rollbackf and beginRollback's callers), so
// their first words say what happened; only an abort carries a person's
// words, after "aborted: ".
func rollbackCause(reason string) string {
	has := func(prefixes ...string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(reason, p) {
				return true
			}
		}
		return false
	}
	switch {
	case reason == "aborted" || has("aborted: ", "rollback requested"):
		return CauseRequested
	case has("checks failed "):
		return CauseChecksFailed
	case strings.Contains(reason, "check evaluations in a row were inconclusive") ||
		has("nobody promoted within ") && strings.Contains(reason, "inconclusive check evaluations"):
		return CauseChecksStalled
	case has("hook ", "hooks "):
		return CauseHookFailed
	case has("green never became healthy", "green target "):
		return CauseUnhealthy
	case has("green instance ", "green has "):
		return CauseInstanceExited
	case has("approval timed out"):
		return CauseApprovalTimeout
	case has("progress deadline: ") || strings.Contains(reason, " (progress_deadline): "):
		return CauseProgressDeadline
	case has("the router refused "):
		return CauseRouterRefused
	case strings.Contains(reason, "image"):
		return CauseImageUnavailable
	}
	return CauseOther
}

// countChange records a committed change of a deployment in the metrics:
// the time spent in the phase it left (since is when it entered it; zero
// for a deployment saved by an older server, which is then not counted),
// a rollback that began, an outcome.
func (e *Engine) countChange(prev, d store.Deployment, since time.Time) {
	m := e.opts.Metrics
	if m == nil {
		return
	}
	if d.Phase != prev.Phase {
		if since.IsZero() && prev.Phase == PhasePending {
			since = prev.CreatedAt
		}
		if !since.IsZero() {
			m.PhaseLeft(d.App, prev.Phase, e.now().Sub(since))
		}
		if d.Phase == PhaseRollingBack {
			m.RollbackBegan(d.App, rollbackCause(d.Reason))
		}
	}
	if prev.Active() && !d.Active() {
		m.DeploymentEnded(d.App, d.Outcome)
	}
}

// countCheck records an evaluation's verdict and its rules'.
func (e *Engine) countCheck(app string, v Verdict, results []RuleResult) {
	if e.opts.Metrics == nil {
		return
	}
	rules := make([]metrics.RuleVerdict, len(results))
	for i, r := range results {
		rules[i] = metrics.RuleVerdict{Rule: r.Rule, Verdict: string(r.Verdict)}
	}
	e.opts.Metrics.CheckEvaluated(app, string(v), rules)
}

// countHook records how long a hook took and how it ended.
func (e *Engine) countHook(app, event string, res commandResult) {
	result := metrics.HookSucceeded
	switch {
	case res.TimedOut:
		result = metrics.HookTimedOut
	case res.Err != nil:
		result = metrics.HookFailed
	}
	e.opts.Metrics.HookRan(app, event, result, res.Took)
}
