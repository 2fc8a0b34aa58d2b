package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newRouterUpgradeCmd() *cobra.Command {
	opts := remoteOptions{}
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Replace the server's router process by one of the server's binary, dropping nothing",
		Long: `Start a new router process from the server's bluegreen binary that takes the
listening sockets over from the running router: both accept for a moment, then
the old one stops accepting, lets its requests and WebSockets finish, and exits.
No connection is refused and no request fails. Needs an admin token.`,
		Example: `  bluegreen router upgrade`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := opts.client()
			if err != nil {
				return err
			}
			rep, err := c.UpgradeRouter(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "router upgraded: pid %d took over from pid %d in %s; the old one drains and exits\n",
				rep.Pid, rep.OldPid, rep.Took)
			return nil
		},
	}
	addRemoteFlags(cmd, &opts)
	return cmd
}
