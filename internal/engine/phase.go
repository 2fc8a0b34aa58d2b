package engine

import (
	"time"

	"bluegreen/internal/audit"
)

// Phases of a deployment, in lifecycle order (see docs/engine.md).
const (
	PhasePending          = "Pending"
	PhaseProvisioning     = "Provisioning"
	PhaseValidating       = "Validating"
	PhaseTestTraffic      = "TestTraffic"
	PhaseAwaitingApproval = "AwaitingApproval"
	PhaseShifting         = "Shifting"
	PhaseBaking           = "Baking"
	PhaseRetiring         = "Retiring"
	PhaseSucceeded        = "Succeeded"
	PhaseRollingBack      = "RollingBack"
	PhaseRolledBack       = "RolledBack"
	PhaseFailed           = "Failed"
)

// Deployment kinds.
const (
	KindDeploy   = "deploy"
	KindRollback = "rollback" // redeploys an earlier revision on the fast path
)

// Slots: the two fleet names an app's revisions alternate between.
const (
	SlotBlue  = "blue"
	SlotGreen = "green"
)

func otherSlot(s string) string {
	if s == SlotGreen {
		return SlotBlue
	}
	return SlotGreen
}

// Deadline names, stored with the deployment as absolute times.
const (
	deadlineProgress = "progress"   // the current phase must move on by then
	deadlineStartup  = "startup"    // green must be healthy by then
	deadlineApproval = "approval"   // a manual approval times out
	deadlineCheck    = "next_check" // the next check evaluation
	deadlineBake     = "bake"       // baking ends
	deadlineKeepBlue = "keep_blue"  // blue retires
	deadlineDrain    = "drain"      // a drain closes what is still open
	deadlineStalled  = "stalled"    // nobody came after inconclusive checks: roll back
)

// details is the engine's own state of a deployment, kept as JSON in
// store.Deployment.Details. Everything a resumed engine needs is here or in
// the deployment's phase, step and deadlines.
type details struct {
	Kind string `json:"kind"`
	// Slot is green's fleet name; BlueSlot blue's ("" when nothing is live).
	Slot          string `json:"slot"`
	BlueSlot      string `json:"blue_slot,omitempty"`
	Instances     int    `json:"instances"`
	BlueInstances int    `json:"blue_instances,omitempty"`
	// Services and BlueServices are the instance counts of the services
	// of a stack, green's and blue's (Instances is then unused).
	Services     map[string]int `json:"services,omitempty"`
	BlueServices map[string]int `json:"blue_services,omitempty"`
	// HealthyServices are the services of a stack that passed their health
	// check while green was provisioned, each before the next started.
	HealthyServices []string `json:"healthy_services,omitempty"`
	// Weight is green's share of production traffic as last set.
	Weight int `json:"weight"`
	// BlueFenced: blue takes no new requests (it is being retired).
	BlueFenced bool     `json:"blue_fenced,omitempty"`
	Progress   Progress `json:"progress"`
	// Requests waiting to be acted on.
	Approved     bool   `json:"approved,omitempty"`
	Full         bool   `json:"full,omitempty"`
	SkipKeepBlue bool   `json:"skip_keep_blue,omitempty"`
	SkipBake     bool   `json:"skip_bake,omitempty"`
	Abort        string `json:"abort,omitempty"` // why a rollback was asked for
	// CheckFailures counts consecutive failed check evaluations, and
	// Inconclusive consecutive inconclusive ones.
	CheckFailures int `json:"check_failures,omitempty"`
	Inconclusive  int `json:"inconclusive,omitempty"`
	// Stalled: inconclusive_limit was reached; the deployment waits for a
	// person (promote or abort) until the stalled deadline.
	Stalled bool `json:"stalled,omitempty"`
	// BlueBaseline is blue's numbers in the last interval in which it had
	// enough requests: relative rules use it once blue has no traffic.
	BlueBaseline *FleetMetrics `json:"blue_baseline,omitempty"`
	// LastResults are the rules' verdicts in the latest check evaluation.
	LastResults []RuleResult `json:"last_results,omitempty"`
	// BlueBaselines are a stack's, by service.
	BlueBaselines map[string]*FleetMetrics `json:"blue_baselines,omitempty"`
	// HealthSeen is, per green target, the failing health answer last
	// reported while validating.
	HealthSeen map[string]string `json:"health_seen,omitempty"`
	// HooksDone lists the lifecycle events whose hooks have all succeeded.
	HooksDone []string `json:"hooks_done,omitempty"`
	// RollbackFrom is the phase a rollback began in.
	RollbackFrom string `json:"rollback_from,omitempty"`
	// EndNow: an abort arrived while rolling back; the rollback ends at
	// once, as far as it can get, with this reason.
	EndNow string `json:"end_now,omitempty"`
	// TroubleSince is when the steps of the deployment began failing, for
	// as long as they fail in a row (zero otherwise).
	TroubleSince time.Time `json:"trouble_since,omitzero"`
	// Fast: a rollback to an earlier revision after blue retired; it skips
	// approval, pauses and bake, but still validates health.
	Fast bool `json:"fast,omitempty"`
	// StartedBy is who asked for the deployment (nil when the server
	// started it itself).
	StartedBy *audit.Actor `json:"started_by,omitempty"`
	// PhaseSince is when the deployment entered its phase, for the time
	// per phase the server's metrics report.
	PhaseSince time.Time `json:"phase_since,omitzero"`
}

func (d *details) hookDone(event string) bool {
	for _, e := range d.HooksDone {
		if e == event {
			return true
		}
	}
	return false
}
