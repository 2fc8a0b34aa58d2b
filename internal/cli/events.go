package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"bluegreen/internal/api"
)

// eventsOptions are the inputs of `bluegreen events`.
type eventsOptions struct {
	Remote remoteOptions
	App    string // "" for every app
	Follow bool
	JSON   bool
	Tail   int
}

func newEventsCmd() *cobra.Command {
	var o eventsOptions
	cmd := &cobra.Command{
		Use:   "events [APP]",
		Short: "Show what happened: phases, traffic, checks, hooks and requests",
		Long: `Show the event log of an app (or of every app): each phase change, traffic
change, check evaluation with its numbers, hook run and request, oldest first.
-f keeps following new events as they happen (a server-sent events stream).
--json prints a JSON array, or with -f one JSON object per line.`,
		Example: `  bluegreen events shop
  bluegreen events -f
  bluegreen events shop --json | jq 'map(select(.kind == "check"))'`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("events takes at most one app name, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.App = args[0]
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runEvents(ctx, o, cmd.OutOrStdout())
		},
	}
	addRemoteFlags(cmd, &o.Remote)
	cmd.Flags().BoolVarP(&o.Follow, "follow", "f", false, "keep following new events")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print events as JSON")
	cmd.Flags().IntVar(&o.Tail, "tail", 50, "how many of the latest events to show first (0: all)")
	return cmd
}

func runEvents(ctx context.Context, o eventsOptions, out io.Writer) error {
	if o.Tail < 0 {
		return usageError{fmt.Errorf("--tail must be 0 or more, not %d", o.Tail)}
	}
	c, err := o.Remote.client()
	if err != nil {
		return err
	}
	if o.App != "" {
		if _, err := c.App(ctx, o.App); err != nil {
			return explain(err, "reading app "+o.App)
		}
	}
	evs, err := latestEvents(ctx, c, o.App, o.Tail)
	if err != nil {
		return explain(err, "listing events")
	}
	if o.JSON && !o.Follow {
		if evs == nil {
			evs = []api.Event{}
		}
		return printJSON(out, evs)
	}
	show := func(e api.Event) error {
		if o.JSON {
			b, err := json.Marshal(e)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(out, string(b))
			return err
		}
		_, err := fmt.Fprintln(out, eventLine(e, o.App == "", time.Local))
		return err
	}
	var last int64
	for _, e := range evs {
		if err := show(e); err != nil {
			return err
		}
		last = e.Seq
	}
	if !o.Follow {
		return nil
	}
	if len(evs) == 0 {
		// Follow from what exists now, not from the beginning.
		if all, err := latestEvents(ctx, c, o.App, 1); err == nil && len(all) > 0 {
			last = all[0].Seq
		}
	}
	err = followEvents(ctx, c, o.App, "", last, show)
	if ctx.Err() != nil {
		return nil
	}
	return explain(err, "following events")
}

// latestEvents reads the last n events of the app (every app when ""), or
// all of them when n is 0, oldest first.
func latestEvents(ctx context.Context, c *api.Client, app string, n int) ([]api.Event, error) {
	var out []api.Event
	var after int64
	for {
		page, err := c.Events(ctx, app, "", after, false)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if n > 0 && len(out) > n {
			out = out[len(out)-n:]
		}
		if len(page) < 1000 {
			return out, nil
		}
		after = page[len(page)-1].Seq
	}
}

// eventLine is an event in one line: "2026-11-22 06:22:41 shop traffic  green 10% → 50% (step 2 of 3)".
func eventLine(e api.Event, withApp bool, loc *time.Location) string {
	app := ""
	if withApp {
		// Events of no app (tokens, params) are the server's.
		app = cmp.Or(e.App, "-") + " "
	}
	return fmt.Sprintf("%s %s%-18s %s", e.Time.In(loc).Format("2006-01-02 15:04:05"), app, e.Kind, continued(e.Message, "    "))
}
