package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// promoteOptions are the inputs of `bluegreen promote`.
type promoteOptions struct {
	Remote remoteOptions
	App    string
	Full   bool
}

func newPromoteCmd() *cobra.Command {
	var o promoteOptions
	cmd := &cobra.Command{
		Use:   "promote APP",
		Short: "End what the app's deployment waits for: approval, a pause, or blue's keep time",
		Long: `End what the app's active deployment waits for: the manual approval, the
current step's pause (timed or not), or, once green is live, the time blue is
kept warm. --full also skips every remaining step: green gets 100 % at once.

It fails (exit 1) when nothing waits for promote, saying what the app is doing.`,
		Example: `  bluegreen promote shop
  bluegreen promote shop --full`,
		Args: exactlyOneApp("promote"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App = args[0]
			return runPromote(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	addRemoteFlags(cmd, &o.Remote)
	cmd.Flags().BoolVar(&o.Full, "full", false, "skip the remaining steps: green to 100% at once")
	return cmd
}

func runPromote(ctx context.Context, o promoteOptions, out io.Writer) error {
	c, err := o.Remote.client()
	if err != nil {
		return err
	}
	d, err := c.Promote(ctx, o.App, o.Full)
	if err != nil {
		return explain(err, "promoting "+o.App)
	}
	what := "promoted"
	if o.Full {
		what = "promoted to 100%:"
	}
	fmt.Fprintf(out, "%s deployment %s of %s (%s)\n", what, d.ID, d.App, d.Phase)
	return nil
}
