package notify

import (
	"encoding/json"
	"fmt"
	"time"

	"bluegreen/internal/audit"
	"bluegreen/internal/spec"
	"bluegreen/internal/store"
)

// Payload is what a notification says: the JSON body, and the facts the
// Slack text is made of.
type Payload struct {
	// Event is the notification event (spec.NotificationEvents).
	Event        string `json:"event"`
	App          string `json:"app"`
	DeploymentID string `json:"deployment_id"`
	// Kind is "deploy", or "rollback" for a deployment of an earlier
	// revision after blue retired.
	Kind         string `json:"kind,omitempty"`
	FromRevision int64  `json:"from_revision,omitempty"`
	ToRevision   int64  `json:"to_revision"`
	// Phase is the deployment's phase when the event was recorded.
	Phase string `json:"phase"`
	// Outcome is set by the events that end a deployment: succeeded,
	// rolled_back or failed.
	Outcome string `json:"outcome,omitempty"`
	// Reason is why the deployment rolled back (rolling_back,
	// rolled_back) or failed.
	Reason string `json:"reason,omitempty"`
	// Message is the event's own line, as `bluegreen events` shows it.
	Message string `json:"message"`
	// By is who asked, for the events a person caused (started,
	// promoted; rolling_back after an abort names them in Reason).
	By *audit.Actor `json:"by,omitempty"`
	// Seq and Time are the event's in the server's log.
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`
}

// eventsOf maps an event of the log to the notification events it is:
// none for most. first says the deployment is the app's first (no blue),
// whose green becomes live as it succeeds.
func eventsOf(e store.Event, first bool) []string {
	phase, _ := e.Fields["phase"].(string)
	switch e.Kind {
	case "deployment.created":
		return []string{spec.NotifyStarted}
	case "checks.inconclusive":
		return []string{spec.NotifyAwaitingApproval}
	case "request":
		if r, _ := e.Fields["request"].(string); r == "promote" {
			return []string{spec.NotifyPromoted}
		}
	case "phase":
		switch phase {
		case "AwaitingApproval":
			return []string{spec.NotifyAwaitingApproval}
		case "Retiring":
			return []string{spec.NotifyLive}
		case "Succeeded":
			if first {
				return []string{spec.NotifyLive, spec.NotifySucceeded}
			}
			return []string{spec.NotifySucceeded}
		case "RollingBack":
			return []string{spec.NotifyRollingBack}
		case "RolledBack":
			return []string{spec.NotifyRolledBack}
		case "Failed":
			return []string{spec.NotifyFailed}
		}
	}
	return nil
}

// payloadOf is the notification event name of e, a record of deployment d.
func payloadOf(name string, e store.Event, d store.Deployment) Payload {
	p := Payload{Event: name, App: e.App, DeploymentID: e.DeploymentID, FromRevision: d.FromGeneration, ToRevision: d.ToGeneration,
		Message: e.Message, Seq: e.Seq, Time: e.Time.UTC()}
	p.Phase, _ = e.Fields["phase"].(string)
	var det struct {
		Kind string `json:"kind"`
	}
	if json.Unmarshal(d.Details, &det) == nil {
		p.Kind = det.Kind
	}
	if a, ok := audit.FromFields(e.Fields); ok {
		p.By = &a
	}
	switch name {
	case spec.NotifyRollingBack:
		p.Reason = d.Reason
	case spec.NotifyRolledBack:
		p.Outcome, p.Reason = store.OutcomeRolledBack, d.Reason
	case spec.NotifyFailed:
		p.Outcome, p.Reason = store.OutcomeFailed, d.Reason
	case spec.NotifySucceeded:
		p.Outcome = store.OutcomeSucceeded
	}
	return p
}

// headlines say each event in a few words, for the Slack text.
var headlines = map[string]string{
	spec.NotifyStarted:          "deployment started",
	spec.NotifyAwaitingApproval: "waiting for promote or abort",
	spec.NotifyPromoted:         "promoted",
	spec.NotifyRollingBack:      "rolling back",
	spec.NotifyRolledBack:       "rolled back",
	spec.NotifyLive:             "green is live",
	spec.NotifySucceeded:        "deployment succeeded",
	spec.NotifyFailed:           "deployment FAILED",
}

// Text is the payload as one line (or two, with a reason) a person reads
// in a chat: "shop: rolled back (d-5f2c9a1b7e3d, revision 6 → 7): rolled
// back to revision 6\nWhy: checks failed 2 times in a row: …".
func (p Payload) Text() string {
	revs := fmt.Sprintf("revision %d", p.ToRevision)
	if p.FromRevision > 0 {
		revs = fmt.Sprintf("revision %d → %d", p.FromRevision, p.ToRevision)
	}
	s := fmt.Sprintf("%s: %s (%s, %s): %s", p.App, headlines[p.Event], p.DeploymentID, revs, p.Message)
	if p.Reason != "" {
		s += "\nWhy: " + p.Reason
	}
	return s
}

// Body renders the payload in a destination's format.
func (p Payload) Body(format string) ([]byte, error) {
	if format == spec.NotifySlack {
		// Slack's incoming webhooks, and the chat servers that copy them
		// (Mattermost, Rocket.Chat), read "text".
		return json.Marshal(map[string]string{"text": p.Text()})
	}
	return json.Marshal(p)
}
