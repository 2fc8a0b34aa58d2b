package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"bluegreen/internal/api"
)

// gateOptions are the inputs of `bluegreen pause`, `resume` and
// `maintenance`.
type gateOptions struct {
	Remote remoteOptions
	App    string
	On     bool // maintenance on (else off)
	// Maintenance: the command is maintenance, not pause or resume.
	Maintenance bool
	MaxWait     time.Duration
	MaxHeld     int
	Message     string
	RetryAfter  time.Duration
	JSON        bool
}

func newPauseCmd() *cobra.Command {
	var o gateOptions
	cmd := &cobra.Command{
		Use:   "pause APP",
		Short: "Hold the app's new production requests until resume (a migration, a database failover)",
		Long: `Hold the app's new production requests until ` + "`bluegreen resume APP`" + `: users see a
short wait instead of errors while a migration or a database failover runs.
Requests in flight finish; new ones wait in the router, each up to --max-wait
(then 503 with Retry-After), and beyond --max-held at once they get 503 at
once. The test listener keeps serving green. A deployment may run while the
app is paused; the held requests go to whichever fleet is live at resume.

The pause is kept by the server: a restart of the server or of the router
keeps the app paused. Pausing an app in maintenance replaces the maintenance.`,
		Example: `  bluegreen pause shop
  bluegreen pause shop --max-wait 1m --max-held 5000
  ./migrate.sh && bluegreen resume shop`,
		Args: exactlyOneApp("pause"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App = args[0]
			return runPause(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	addRemoteFlags(cmd, &o.Remote)
	cmd.Flags().DurationVar(&o.MaxWait, "max-wait", 0, "how long one request is held before it gets 503 (default 30s, at most 1h)")
	cmd.Flags().IntVar(&o.MaxHeld, "max-held", 0, "how many requests are held at once; more get 503 at once (default 1000)")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the app's state as JSON")
	return cmd
}

func newResumeCmd() *cobra.Command {
	var o gateOptions
	cmd := &cobra.Command{
		Use:   "resume APP",
		Short: "End the app's pause: held requests go on to the live fleet",
		Long: `End the pause of ` + "`bluegreen pause APP`" + `: the requests the router holds, and new
ones, go on to the fleet that is live now. An app that is not paused is left
as it is (exit 0); an app in maintenance is an error: end it with
` + "`bluegreen maintenance APP off`" + `.`,
		Example: `  bluegreen resume shop`,
		Args:    exactlyOneApp("resume"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App = args[0]
			return runResume(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	addRemoteFlags(cmd, &o.Remote)
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the app's state as JSON")
	return cmd
}

func newMaintenanceCmd() *cobra.Command {
	var o gateOptions
	cmd := &cobra.Command{
		Use:   "maintenance APP on|off",
		Short: "Answer the app's production requests with a 503 maintenance page, or stop",
		Long: `With on, every production request of the app is answered 503 with a
maintenance page (HTML for browsers, JSON when the request asks for JSON, text
otherwise) and a Retry-After header; other apps and the app's test listener
are not affected. With off, requests go to the live fleet again.

Maintenance is kept by the server across restarts. Requests a pause holds
get the page when maintenance is turned on.`,
		Example: `  bluegreen maintenance shop on --message "Back at 10:00 UTC."
  bluegreen maintenance shop off`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 2 || (args[1] != "on" && args[1] != "off") {
				return usageError{fmt.Errorf("maintenance takes an app name and on or off (bluegreen maintenance shop on), got %q", strings.Join(args, " "))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App, o.On, o.Maintenance = args[0], args[1] == "on", true
			if !o.On && (cmd.Flags().Changed("message") || cmd.Flags().Changed("retry-after")) {
				return usageError{fmt.Errorf("--message and --retry-after go with on, not off")}
			}
			return runMaintenance(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	addRemoteFlags(cmd, &o.Remote)
	cmd.Flags().StringVar(&o.Message, "message", "", "the text users read on the page (default: the service is down for maintenance)")
	cmd.Flags().DurationVar(&o.RetryAfter, "retry-after", 0, "the Retry-After header, whole seconds (default 60s)")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the app's state as JSON")
	return cmd
}

func runPause(ctx context.Context, o gateOptions, out io.Writer) error {
	if o.MaxWait < 0 || o.MaxHeld < 0 {
		return usageError{fmt.Errorf("--max-wait and --max-held cannot be negative")}
	}
	c, err := o.Remote.client()
	if err != nil {
		return err
	}
	req := api.PauseRequest{MaxHeld: o.MaxHeld}
	if o.MaxWait > 0 {
		req.MaxWait = o.MaxWait.String()
	}
	g, err := c.Pause(ctx, o.App, req)
	if err != nil {
		return explain(err, "pausing "+o.App)
	}
	return printGate(out, o, g)
}

func runResume(ctx context.Context, o gateOptions, out io.Writer) error {
	c, err := o.Remote.client()
	if err != nil {
		return err
	}
	g, err := c.Resume(ctx, o.App)
	if err != nil {
		return explain(err, "resuming "+o.App)
	}
	return printGate(out, o, g)
}

func runMaintenance(ctx context.Context, o gateOptions, out io.Writer) error {
	c, err := o.Remote.client()
	if err != nil {
		return err
	}
	var g api.GateChange
	if o.On {
		req := api.MaintenanceRequest{Message: o.Message}
		if o.RetryAfter > 0 {
			req.RetryAfter = o.RetryAfter.String()
		}
		g, err = c.MaintenanceOn(ctx, o.App, req)
	} else {
		g, err = c.MaintenanceOff(ctx, o.App)
	}
	if err != nil {
		return explain(err, "setting maintenance of "+o.App)
	}
	return printGate(out, o, g)
}

// printGate says what the app's production requests meet now.
func printGate(out io.Writer, o gateOptions, g api.GateChange) error {
	if o.JSON {
		return printJSON(out, g)
	}
	switch {
	case g.State == api.GatePaused:
		_, err := fmt.Fprintf(out, "%s paused: new production requests are held (at most %d, each up to %s) until `bluegreen resume %s`\n",
			g.App, g.MaxHeld, g.MaxWait, g.App)
		return err
	case g.State == api.GateMaintenance:
		_, err := fmt.Fprintf(out, "%s in maintenance: production requests get a 503 page (Retry-After %s) until `bluegreen maintenance %s off`\n",
			g.App, g.RetryAfter, g.App)
		return err
	case g.Was == api.GateServing && o.Maintenance:
		_, err := fmt.Fprintf(out, "%s was not in maintenance: it serves as usual\n", g.App)
		return err
	case g.Was == api.GateServing:
		_, err := fmt.Fprintf(out, "%s was not paused: it serves as usual\n", g.App)
		return err
	case g.Was == api.GatePaused:
		_, err := fmt.Fprintf(out, "%s resumed: held and new requests go to the live fleet\n", g.App)
		return err
	}
	_, err := fmt.Fprintf(out, "%s out of maintenance: production requests go to the live fleet\n", g.App)
	return err
}

// gateLine is the status line of an app paused or in maintenance, "" for
// one that serves as usual.
func gateLine(g *api.Gate) string {
	if g == nil {
		return ""
	}
	since := ""
	if g.Since != nil {
		since = " since " + g.Since.Local().Format("15:04:05")
	}
	if g.By != "" {
		since += " by " + g.By
	}
	if g.State == api.GateMaintenance {
		return fmt.Sprintf("IN MAINTENANCE%s: production requests get a 503 page; `bluegreen maintenance %s off` ends it\n", since, g.App)
	}
	held := ""
	if g.Held != nil {
		held = fmt.Sprintf(" %s held now,", plural(int(*g.Held), "request"))
	}
	return fmt.Sprintf("PAUSED%s:%s at most %d, each up to %s; `bluegreen resume %s` releases them\n", since, held, g.MaxHeld, g.MaxWait, g.App)
}
