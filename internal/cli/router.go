package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newRouterCmd() *cobra.Command {
	var config string
	cmd := &cobra.Command{
		Use:   "router --config routes.yaml",
		Short: "Run the router alone from a route file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return errors.New("router: not implemented yet")
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "route file (YAML)")
	return cmd
}
