package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/engine"
)

// progress is what a person watching a deployment sees, built from the
// deployment as first read and then from its events. Rendering it is a
// pure function (frame, plainLine), tested with golden strings.
type progress struct {
	ID       string
	App      string
	From, To int64
	Phase    string
	Step     int // 0-based strategy step
	Steps    int // the strategy's steps (0: unknown)
	Weight   int // green's share of production traffic
	// Seen lists the phases the deployment has been in, in order.
	Seen    []string
	Check   *checkNumbers
	Recent  []api.Event // the last few events, for the terminal view
	Outcome string
	Reason  string
}

// checkNumbers are the numbers of the latest check evaluation.
type checkNumbers struct {
	Verdict            string
	GreenRequests      float64
	GreenErrorRate     float64
	GreenP99           float64
	HasBlue            bool
	BlueRequests       float64
	BlueErrorRate      float64
	BlueP99            float64
	Failures, MaxFails float64
}

// recentEvents is how many events the terminal view keeps at its bottom.
const recentEvents = 4

// deploymentDetails is what the progress reads of the engine's details.
type deploymentDetails struct {
	Weight   int    `json:"weight"`
	BlueSlot string `json:"blue_slot"`
	Progress struct {
		Step int `json:"step"`
	} `json:"progress"`
}

// newProgress starts from a deployment as the API answers it, with the
// number of strategy steps when known.
func newProgress(d api.Deployment, steps int) *progress {
	p := &progress{ID: d.ID, App: d.App, From: d.FromRevision, To: d.ToRevision, Steps: steps}
	var det deploymentDetails
	_ = json.Unmarshal(d.Details, &det)
	p.Weight, p.Step = det.Weight, det.Progress.Step
	p.setPhase(d.Phase)
	p.Outcome, p.Reason = d.Outcome, d.Reason
	return p
}

func (p *progress) setPhase(phase string) {
	if phase == "" || phase == p.Phase {
		return
	}
	p.Phase = phase
	p.Seen = append(p.Seen, phase)
}

// apply moves the progress on by one event of its deployment.
func (p *progress) apply(e api.Event) {
	if e.DeploymentID != p.ID {
		return
	}
	num := func(k string) float64 { f, _ := e.Fields[k].(float64); return f }
	if ph, ok := e.Fields["phase"].(string); ok {
		p.setPhase(ph)
	}
	switch p.Phase {
	case engine.PhaseSucceeded:
		p.Outcome, p.Reason = "succeeded", e.Message
	case engine.PhaseRolledBack, engine.PhaseFailed:
		p.Outcome = strings.ToLower(map[string]string{engine.PhaseRolledBack: "rolled_back", engine.PhaseFailed: "failed"}[p.Phase])
		if p.Reason == "" {
			p.Reason = e.Message
		}
	case engine.PhaseRollingBack:
		p.Weight = 0
		if e.Kind == "phase" {
			p.Reason = strings.TrimPrefix(e.Message, "rolling back: ")
		}
	}
	switch e.Kind {
	case "traffic":
		if _, ok := e.Fields["weight"]; ok {
			p.Weight, p.Step = int(num("weight")), int(num("step"))
		}
	case "check":
		c := &checkNumbers{Verdict: fmt.Sprint(e.Fields["verdict"]),
			GreenRequests: num("green_requests"), GreenErrorRate: num("green_error_rate"), GreenP99: num("green_p99_seconds"),
			Failures: num("failures"), MaxFails: num("failure_limit")}
		if _, ok := e.Fields["blue_requests"]; ok {
			c.HasBlue = true
			c.BlueRequests, c.BlueErrorRate, c.BlueP99 = num("blue_requests"), num("blue_error_rate"), num("blue_p99_seconds")
		}
		p.Check = c
	}
	p.Recent = append(p.Recent, e)
	if len(p.Recent) > recentEvents {
		p.Recent = p.Recent[len(p.Recent)-recentEvents:]
	}
}

// done says whether the deployment has ended.
func (p *progress) done() bool { return p.Outcome != "" }

// checklist is the phases to show: the ones passed, the current one, and
// the ones still to come on the way to Succeeded (or RolledBack).
func (p *progress) checklist() []string {
	var out []string
	seen := map[string]bool{}
	for _, ph := range p.Seen {
		if ph == engine.PhasePending || seen[ph] {
			continue
		}
		seen[ph] = true
		out = append(out, ph)
	}
	switch p.Phase {
	case engine.PhaseRollingBack:
		return append(out, engine.PhaseRolledBack)
	case engine.PhaseRolledBack, engine.PhaseFailed, engine.PhaseSucceeded:
		return out
	}
	ahead := []string{engine.PhaseProvisioning, engine.PhaseValidating, engine.PhaseTestTraffic, engine.PhaseShifting, engine.PhaseBaking}
	if p.From > 0 {
		ahead = append(ahead, engine.PhaseRetiring)
	}
	ahead = append(ahead, engine.PhaseSucceeded)
	for _, ph := range ahead {
		if !seen[ph] {
			out = append(out, ph)
		}
	}
	return out
}

// frame is the terminal view of the progress: a header, the phase
// checklist, the traffic bar, the latest check's numbers and the last
// events. now is the local time the events are shown in.
func frame(p *progress, loc *time.Location) []string {
	var lines []string
	head := fmt.Sprintf("deployment %s of %s: revision %d", p.ID, p.App, p.To)
	if p.From > 0 {
		head = fmt.Sprintf("deployment %s of %s: revision %d → %d", p.ID, p.App, p.From, p.To)
	}
	lines = append(lines, head)
	current := p.Phase
	passed := true
	for _, ph := range p.checklist() {
		mark := "○"
		switch {
		case ph == current && (ph == engine.PhaseSucceeded):
			mark = "✓"
		case ph == current && (ph == engine.PhaseRolledBack || ph == engine.PhaseFailed):
			mark = "✗"
		case ph == current:
			mark, passed = "●", false
		case passed:
			mark = "✓"
		}
		line := "  " + mark + " " + ph
		if ph == current && ph == engine.PhaseShifting && p.Steps > 0 {
			line += fmt.Sprintf("  step %d of %d", min(p.Step+1, p.Steps), p.Steps)
		}
		lines = append(lines, line)
	}
	if p.From > 0 {
		lines = append(lines, "  "+trafficBar(100-p.Weight, p.Weight, 10))
	} else {
		lines = append(lines, "  "+trafficBar(0, p.Weight, 10))
	}
	if c := p.Check; c != nil {
		lines = append(lines, "  "+c.String())
	}
	for _, e := range p.Recent {
		msg := continued(e.Message, "           ")
		lines = append(lines, strings.Split("  "+e.Time.In(loc).Format("15:04:05")+" "+msg, "\n")...)
	}
	if p.done() {
		lines = append(lines, endLine(p))
	}
	return lines
}

// String is a check evaluation in one line.
func (c *checkNumbers) String() string {
	s := fmt.Sprintf("check %s: green %.0f req, %s errors, p99 %s", c.Verdict, c.GreenRequests, percent(c.GreenErrorRate), seconds(c.GreenP99))
	if c.HasBlue {
		s += fmt.Sprintf(" | blue %.0f req, %s errors, p99 %s", c.BlueRequests, percent(c.BlueErrorRate), seconds(c.BlueP99))
	}
	if c.Failures > 0 {
		s += fmt.Sprintf(" (failure %.0f of %.0f)", c.Failures, c.MaxFails)
	}
	return s
}

// trafficBar draws "blue ████████░░ 80% | green ██░░░░░░░░ 20%" with
// bars of width cells.
func trafficBar(blue, green, width int) string {
	bar := func(pct int) string {
		n := (pct*width + 50) / 100
		if pct > 0 && n == 0 {
			n = 1
		}
		if pct < 100 && n == width {
			n = width - 1
		}
		return strings.Repeat("█", n) + strings.Repeat("░", width-n)
	}
	return fmt.Sprintf("blue %s %3d%% | green %s %3d%%", bar(blue), blue, bar(green), green)
}

// plainLine is one event as a line of plain output, for when the output is
// not a terminal: "12:00:01 Shifting     green 10% → 50% (step 2 of 3)".
func plainLine(e api.Event, phase string, loc *time.Location) string {
	return fmt.Sprintf("%s %-16s %s", e.Time.In(loc).Format("15:04:05"), phase, continued(e.Message, "    "))
}

// endLine says how the deployment ended.
func endLine(p *progress) string {
	switch p.Outcome {
	case "succeeded":
		return fmt.Sprintf("deployment %s succeeded: revision %d is live", p.ID, p.To)
	case "rolled_back":
		return fmt.Sprintf("deployment %s rolled back: %s", p.ID, p.Reason)
	default:
		return fmt.Sprintf("deployment %s %s: %s", p.ID, strings.ReplaceAll(p.Outcome, "_", " "), p.Reason)
	}
}

// continued keeps a message whole: its lines after the first (a failed
// green's last output, say) are indented under the first.
func continued(s, indent string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+indent)
}

func percent(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) }

// seconds shows a latency in seconds as milliseconds or seconds.
func seconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	if d > 0 && d < 10*time.Millisecond {
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return d.Round(10 * time.Millisecond).String()
}

// redraw returns what moves the cursor up over the previous frame of
// prev lines and writes lines in its place, clearing what is left below.
func redraw(prev int, lines []string) string {
	var b strings.Builder
	if prev > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", prev)
	}
	for _, l := range lines {
		b.WriteString("\r\x1b[2K")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	b.WriteString("\x1b[J")
	return b.String()
}
