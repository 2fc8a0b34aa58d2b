package engine

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"bluegreen/internal/platform"
	"bluegreen/internal/router"
)

// Reasons for a failed green say why, where people look: the summary on
// the first line, then, indented, what the instance last wrote and what
// its last health check saw.

// tailLines is how many lines of an instance's output a reason shows.
const tailLines = 8

// outputTail is the last lines an instance wrote, trimmed of blank ones.
func (e *Engine) outputTail(ctx context.Context, id string) []string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rc, err := e.plat.Logs(ctx, id, platform.LogOptions{Tail: tailLines})
	if err != nil {
		return nil
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 16<<10))
	var out []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if l = strings.TrimRight(l, "\r \t"); l != "" {
			out = append(out, l)
		}
	}
	if len(out) > tailLines {
		out = out[len(out)-tailLines:]
	}
	return out
}

// exitedReason says that a green instance exited, with its last output.
func (e *Engine) exitedReason(ctx context.Context, in platform.Instance) string {
	var b strings.Builder
	if in.ExitCode >= 0 {
		fmt.Fprintf(&b, "green instance %s exited with code %d", in.ID, in.ExitCode)
	} else {
		fmt.Fprintf(&b, "green instance %s exited (killed by a signal, or its code is unknown)", in.ID)
	}
	writeOutput(&b, e.outputTail(ctx, in.ID))
	return b.String()
}

// unhealthyDetails says, for the green instances that are not healthy,
// what their last health check saw and what they last wrote.
func (e *Engine) unhealthyDetails(ctx context.Context, running []platform.Instance, targets []router.TargetSnapshot, need uint64) string {
	byAddr := map[string]router.TargetSnapshot{}
	for _, t := range targets {
		byAddr[t.Address] = t
	}
	var b strings.Builder
	shown := 0
	for _, in := range running {
		t, ok := byAddr[in.Address]
		if ok && t.Healthy && !t.Suspect && t.Checks >= need {
			continue
		}
		if shown == 2 {
			b.WriteString("\n  (and more instances alike)")
			break
		}
		shown++
		fmt.Fprintf(&b, "\n  instance %s at %s:", in.ID, in.Address)
		switch {
		case !ok || t.LastCheck == "":
			b.WriteString("\n    last health check: none yet")
		default:
			fmt.Fprintf(&b, "\n    last health check: %s", t.LastCheck)
			if strings.Contains(t.LastCheck, "connection refused") {
				fmt.Fprintf(&b, "\n    nothing listens on %s: the app must listen on the port it is given in $PORT", in.Address)
			} else if strings.Contains(t.LastCheck, " answered 404") {
				b.WriteString("\n    the app answers, but not on the health path: set health.path to a path it answers with 2xx or 3xx")
			}
		}
		writeOutput(&b, e.outputTail(ctx, in.ID))
	}
	return b.String()
}

func writeOutput(b *strings.Builder, lines []string) {
	if len(lines) == 0 {
		b.WriteString("\n    it wrote nothing")
		return
	}
	b.WriteString("\n    its last output:")
	for _, l := range lines {
		b.WriteString("\n      " + l)
	}
}

// reportHealthWait records, while green is being validated, what a failing
// health check of a green instance saw, once for each new answer, so that
// people watching see at once why green is not healthy yet.
func (e *Engine) reportHealthWait(ctx context.Context, s *state, targets []router.TargetSnapshot) error {
	changed := false
	for _, t := range targets {
		if t.Checks == 0 || t.Healthy || t.LastCheck == "" || t.LastCheckPassed || s.det.HealthSeen[t.Address] == t.LastCheck {
			continue
		}
		if s.det.HealthSeen == nil {
			s.det.HealthSeen = map[string]string{}
		}
		s.det.HealthSeen[t.Address] = t.LastCheck
		changed = true
		e.event(ctx, s.d.App, s.d.ID, "health.failing", fmt.Sprintf("green instance at %s is not healthy yet: %s", t.Address, t.LastCheck),
			map[string]any{"address": t.Address, "last_check": t.LastCheck})
	}
	if !changed {
		return nil
	}
	return e.save(ctx, s, change{})
}
