package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"bluegreen/internal/platform/process"
)

// newInstanceShimCmd is the per-instance shim the process platform starts:
// bluegreen runs it, people do not, so it is hidden from help.
func newInstanceShimCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "instance-shim ID",
		Short:              "Watch one instance of the process platform (started by bluegreen itself)",
		Hidden:             true,
		Args:               cobra.ExactArgs(1),
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			if code := process.RunShim(args); code != 0 {
				return fmt.Errorf("instance-shim %s: exit code %d", args[0], code)
			}
			return nil
		},
	}
}
