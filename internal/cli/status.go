package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"bluegreen/internal/api"
)

// statusOptions are the inputs of `bluegreen status`.
type statusOptions struct {
	Remote remoteOptions
	App    string
	Window string
	Watch  bool
	JSON   bool
	TTY    bool
	// Every is how often --watch reads the status again.
	Every time.Duration
}

func newStatusCmd() *cobra.Command {
	o := statusOptions{Every: 2 * time.Second}
	cmd := &cobra.Command{
		Use:   "status APP",
		Short: "Show an app: live revision, deployment, traffic, checks and instances",
		Long: `Show an app: its live revision; the active deployment's phase and step and
what happens next and when (e.g. "blue retires in 54m"); the traffic split
between blue (the live fleet) and green (the candidate); each fleet's request
rate, error rate and p99 over the last 10 seconds (--window 1m for a minute);
and the instances with their health.

--watch keeps it up to date: redrawn in place on a terminal, printed again
whenever it changes otherwise.`,
		Example: `  bluegreen status shop
  bluegreen status shop --watch
  bluegreen status shop --json | jq .fleets`,
		Args: exactlyOneApp("status"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App = args[0]
			o.TTY = isTerminal(cmd.OutOrStdout())
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runStatus(ctx, o, cmd.OutOrStdout())
		},
	}
	addRemoteFlags(cmd, &o.Remote)
	cmd.Flags().StringVar(&o.Window, "window", "10s", "how far back the numbers look: 10s or 1m")
	cmd.Flags().BoolVarP(&o.Watch, "watch", "w", false, "keep showing the status as it changes")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the status as JSON")
	return cmd
}

// exactlyOneApp is the Args check of commands that take one app name.
func exactlyOneApp(command string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usageError{fmt.Errorf("%s takes one app name, got %d arguments", command, len(args))}
		}
		return nil
	}
}

func runStatus(ctx context.Context, o statusOptions, out io.Writer) error {
	if o.Window != "10s" && o.Window != "1m" {
		return usageError{fmt.Errorf("--window must be 10s or 1m, not %q", o.Window)}
	}
	c, err := o.Remote.client()
	if err != nil {
		return err
	}
	read := func() (api.Status, error) {
		st, err := c.Status(ctx, o.App, o.Window)
		if err != nil {
			return st, explain(err, "reading the status of "+o.App)
		}
		return st, nil
	}
	st, err := read()
	if err != nil {
		return err
	}
	if !o.Watch {
		if o.JSON {
			return printJSON(out, st)
		}
		_, err := fmt.Fprint(out, renderStatus(st, time.Now()))
		return err
	}
	shown, last := 0, ""
	tick := time.NewTicker(o.Every)
	defer tick.Stop()
	for {
		switch {
		case o.JSON:
			b, _ := json.Marshal(st)
			fmt.Fprintln(out, string(b))
		case o.TTY:
			lines := strings.Split(strings.TrimSuffix(renderStatus(st, time.Now()), "\n"), "\n")
			fmt.Fprint(out, redraw(shown, lines))
			shown = len(lines)
		default:
			if text := renderStatus(st, time.Time{}); text != last {
				fmt.Fprintf(out, "%s %s", time.Now().Format("15:04:05"), renderStatus(st, time.Now()))
				last = text
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if st, err = read(); err != nil {
			return err
		}
	}
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// renderStatus is the status as text. now is the time deadlines are shown
// against ("in 54m"); the zero time leaves them out, to compare renders.
func renderStatus(st api.Status, now time.Time) string {
	var b strings.Builder
	live := "nothing live yet"
	if st.LiveRevision > 0 {
		live = fmt.Sprintf("revision %d live (%s)", st.LiveRevision, plural(st.LiveInstances, "instance"))
	}
	fmt.Fprintf(&b, "%s: %s\n", st.Name, live)
	b.WriteString(gateLine(st.Gate))
	if d := st.Deployment; d != nil {
		rev := fmt.Sprintf("revision %d", d.ToRevision)
		if d.FromRevision > 0 {
			rev = fmt.Sprintf("revision %d → %d", d.FromRevision, d.ToRevision)
		}
		phase := d.Phase
		if p := st.Progress; p != nil && d.Phase == "Shifting" && p.Steps > 0 {
			phase += fmt.Sprintf(", step %d of %d", min(p.Step+1, p.Steps), p.Steps)
		}
		fmt.Fprintf(&b, "deployment %s: %s, %s\n", d.ID, rev, phase)
		if d.Reason != "" && d.Phase == "RollingBack" {
			fmt.Fprintf(&b, "  because: %s\n", d.Reason)
		}
		if p := st.Progress; p != nil && p.Next != "" {
			next := p.Next
			if p.NextAt != nil && !now.IsZero() {
				next += " " + until(*p.NextAt, now)
			}
			fmt.Fprintf(&b, "  next: %s\n", next)
		}
	}
	if d := st.LastDeployment; st.Deployment == nil && d != nil && d.Outcome != "" && d.Outcome != "succeeded" {
		// The last deployment failed: why, whole, where people look first.
		fmt.Fprintf(&b, "last deployment %s (revision %d) %s: %s\n", d.ID, d.ToRevision, outcomeWords(d.Outcome), continued(d.Reason, "  "))
	}
	blue, green := roles(st)
	if blue != nil || green != nil {
		bw, gw := 0, 0
		if blue != nil {
			bw = blue.Weight
		}
		if green != nil {
			gw = green.Weight
		}
		fmt.Fprintf(&b, "traffic: %s\n", trafficBar(bw, gw, 10))
		fmt.Fprintf(&b, "  %-6s %-9s %8s %8s %8s %8s  %s\n", "FLEET", "REVISION", "REQ/S", "ERRORS", "P99", "HEALTHY", "")
		for _, r := range []struct {
			role string
			f    *api.FleetStatus
		}{{"blue", blue}, {"green", green}} {
			if r.f == nil {
				continue
			}
			var notes []string
			if r.f.Live {
				notes = append(notes, "live")
			}
			if r.role == "blue" && !r.f.Live && st.Deployment != nil && st.Deployment.Phase == "Retiring" {
				notes = append(notes, "warm, retiring")
			}
			if r.f.Test {
				notes = append(notes, "test listener")
			}
			if r.f.Fenced {
				notes = append(notes, "fenced")
			}
			p99 := "-"
			if r.f.Requests > 0 {
				p99 = seconds(r.f.P99Seconds)
			}
			fmt.Fprintf(&b, "  %-6s %-9d %8.1f %8s %8s %8s  %s\n", r.role, r.f.Revision, r.f.RequestRate, percent(r.f.ErrorRate),
				p99, fmt.Sprintf("%d/%d", r.f.Healthy, r.f.Targets), strings.Join(notes, ", "))
		}
	}
	renderServices(&b, st)
	renderCertificates(&b, st, now)
	header := false
	for _, f := range st.Fleets {
		role := f.Role // instances are named by their fleet's role, never its slot
		if role == "" {
			role = "-"
		}
		for _, in := range f.Instances {
			if !header {
				b.WriteString("instances:\n")
				header = true
			}
			health := "-"
			if in.Healthy != nil {
				health = map[bool]string{true: "healthy", false: "unhealthy"}[*in.Healthy]
			}
			fmt.Fprintf(&b, "  %-24s %-6s %-8d %-21s %-8s %s\n", in.ID, role, in.Revision, in.Address, in.State, health)
		}
	}
	return b.String()
}

// renderServices shows each service of a stack: where it answers, and each
// fleet's copy of it as the router saw it, calls from the other services
// included, with the address those services reach it at.
func renderServices(b *strings.Builder, st api.Status) {
	if len(st.Services) == 0 {
		return
	}
	b.WriteString("services:\n")
	fmt.Fprintf(b, "  %-12s %-10s %-6s %-9s %8s %8s %8s %8s  %s\n", "SERVICE", "PATH", "FLEET", "REVISION", "REQ/S", "ERRORS", "P99", "HEALTHY", "ADDRESS")
	var live []string
	for _, sv := range st.Services {
		path := sv.Path
		if !sv.Public {
			path = "internal"
		}
		name := sv.Name
		for _, f := range sv.Fleets {
			role := f.Role
			if role == "" {
				role = "-"
			}
			p99 := "-"
			if f.Requests > 0 {
				p99 = seconds(f.P99Seconds)
			}
			fmt.Fprintf(b, "  %-12s %-10s %-6s %-9d %8.1f %8s %8s %8s  %s\n", name, path, role, f.Revision, f.RequestRate, percent(f.ErrorRate),
				p99, fmt.Sprintf("%d/%d", f.Healthy, f.Targets), f.Address)
			name, path = "", ""
		}
		for _, c := range sv.Checks {
			fmt.Fprintf(b, "  %-12s check %s: %s (%s)\n", "", c.Rule, c.Verdict, c.Detail)
		}
		if sv.LiveAddress != "" {
			live = append(live, sv.Name+" "+sv.LiveAddress)
		}
	}
	if len(live) > 0 {
		fmt.Fprintf(b, "  live addresses (for callers outside the stack): %s\n", strings.Join(live, ", "))
	}
}

// roles picks the fleets the server named blue (live) and green
// (candidate).
func roles(st api.Status) (blue, green *api.FleetStatus) {
	for i := range st.Fleets {
		switch f := &st.Fleets[i]; f.Role {
		case "blue":
			blue = f
		case "green":
			green = f
		}
	}
	return blue, green
}

// until says when t comes relative to now: "in 54m", "in 12s", "now".
func until(t, now time.Time) string {
	d := t.Sub(now)
	if d <= 0 {
		return "now"
	}
	return "in " + shortDuration(d)
}

// shortDuration rounds a duration to what a person needs: 1h5m, 54m,
// 4m10s, 12s.
func shortDuration(d time.Duration) string {
	switch {
	case d >= time.Hour:
		d = d.Round(time.Minute)
		return strings.TrimSuffix(d.String(), "0s")
	case d >= 10*time.Minute:
		return fmt.Sprintf("%dm", int(d.Round(time.Minute).Minutes()))
	case d >= time.Minute:
		return d.Round(time.Second).String()
	}
	return fmt.Sprintf("%ds", int((d + time.Second - 1).Seconds()))
}
