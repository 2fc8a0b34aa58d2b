package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// abortOptions are the inputs of `bluegreen abort`.
type abortOptions struct {
	Remote remoteOptions
	App    string
	Reason string
}

func newAbortCmd() *cobra.Command {
	var o abortOptions
	cmd := &cobra.Command{
		Use:   "abort APP",
		Short: "Roll the app's active deployment back",
		Long: `Roll the app's active deployment back, from whatever phase it is in:
production traffic goes back to blue at once, green is drained and stopped.
A hook or drain in progress is interrupted.

It fails (exit 1) when the app has no deployment in progress.`,
		Example: `  bluegreen abort shop
  bluegreen abort shop --reason "checkout errors in the logs"`,
		Args: exactlyOneApp("abort"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App = args[0]
			return runAbort(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	addRemoteFlags(cmd, &o.Remote)
	cmd.Flags().StringVar(&o.Reason, "reason", "", "why, kept with the deployment")
	return cmd
}

func runAbort(ctx context.Context, o abortOptions, out io.Writer) error {
	c, err := o.Remote.client()
	if err != nil {
		return err
	}
	d, err := c.Abort(ctx, o.App, o.Reason)
	if err != nil {
		return explain(err, "aborting the deployment of "+o.App)
	}
	fmt.Fprintf(out, "aborting deployment %s of %s: rolling back (see `bluegreen status %s`)\n", d.ID, d.App, d.App)
	return nil
}
