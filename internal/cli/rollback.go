package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// rollbackOptions are the inputs of `bluegreen rollback`.
type rollbackOptions struct {
	Remote remoteOptions
	App    string
	To     int64
	Wait   bool
	TTY    bool
}

func newRollbackCmd() *cobra.Command {
	var o rollbackOptions
	cmd := &cobra.Command{
		Use:   "rollback APP",
		Short: "Go back to an earlier revision",
		Long: `Go back to an earlier revision of the app. While blue is still warm (the last
deployment is in Retiring) it is a weight flip: production traffic goes back
to blue at once. Once blue has retired, it deploys the earlier revision (the
one live before, or --to N) on the fast path: no approval, no pauses, no
bake, straight to 100 % once it is healthy and its hooks pass.

With --wait it shows the progress until the rollback ends (exit 3 if it
does not complete).`,
		Example: `  bluegreen rollback shop
  bluegreen rollback shop --to 3 --wait`,
		Args: exactlyOneApp("rollback"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App = args[0]
			o.TTY = isTerminal(cmd.OutOrStdout())
			return runRollback(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	addRemoteFlags(cmd, &o.Remote)
	cmd.Flags().Int64Var(&o.To, "to", 0, "the revision to go back to (default: the one live before)")
	cmd.Flags().BoolVarP(&o.Wait, "wait", "w", false, "show the progress until the rollback ends")
	return cmd
}

func runRollback(ctx context.Context, o rollbackOptions, out io.Writer) error {
	if o.To < 0 {
		return usageError{fmt.Errorf("--to must be a revision number, not %d", o.To)}
	}
	c, err := o.Remote.client()
	if err != nil {
		return err
	}
	d, err := c.Rollback(ctx, o.App, o.To)
	if err != nil {
		return explain(err, "rolling back "+o.App)
	}
	var det struct {
		Kind string `json:"kind"`
	}
	_ = json.Unmarshal(d.Details, &det)
	if det.Kind == "rollback" {
		fmt.Fprintf(out, "started deployment %s of %s back to revision %d\n", d.ID, d.App, d.ToRevision)
	} else {
		// Blue was still warm: the last deployment rolls back.
		fmt.Fprintf(out, "rolling back deployment %s of %s: traffic goes back to revision %d\n", d.ID, d.App, d.FromRevision)
	}
	if !o.Wait {
		return nil
	}
	// A redeploy is released once the earlier revision is live again; a
	// flip back to a warm blue is followed to its end.
	final, err := watchDeployment(ctx, c, d, out, o.TTY, det.Kind == "rollback")
	if err != nil {
		return err
	}
	// A weight flip ends rolled back, as it should; a redeploy succeeds.
	if final.Outcome == "failed" {
		return &deploymentEndedError{final}
	}
	return nil
}
