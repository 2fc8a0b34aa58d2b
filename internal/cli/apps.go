package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// appsOptions are the inputs of `bluegreen apps`.
type appsOptions struct {
	Remote remoteOptions
	JSON   bool
}

func newAppsCmd() *cobra.Command {
	var o appsOptions
	cmd := &cobra.Command{
		Use:   "apps",
		Short: "List the apps: live revision, fleet, instances and active deployment",
		Example: `  bluegreen apps
  bluegreen apps --json | jq -r '.[].name'`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("apps takes no arguments, got %d", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runApps(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	addRemoteFlags(cmd, &o.Remote)
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the apps as JSON")
	return cmd
}

func runApps(ctx context.Context, o appsOptions, out io.Writer) error {
	c, err := o.Remote.client()
	if err != nil {
		return err
	}
	apps, err := c.Apps(ctx)
	if err != nil {
		return explain(err, "listing apps")
	}
	if o.JSON {
		return printJSON(out, apps)
	}
	if len(apps) == 0 {
		_, err := fmt.Fprintln(out, "no apps yet: `bluegreen deploy` makes one")
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tLIVE\tINSTANCES\tDEPLOYMENT\tTRAFFIC")
	for _, a := range apps {
		live, dep := "-", "-"
		if a.LiveRevision > 0 {
			live = fmt.Sprintf("revision %d", a.LiveRevision)
		}
		if d := a.Deployment; d != nil {
			dep = fmt.Sprintf("%s → revision %d: %s", d.ID, d.ToRevision, d.Phase)
		}
		traffic := "serving"
		if a.Gate != nil {
			traffic = a.Gate.State
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", a.Name, live, a.LiveInstances, dep, traffic)
	}
	return tw.Flush()
}
