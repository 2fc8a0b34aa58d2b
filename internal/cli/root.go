// Package cli holds bluegreen's commands: one file per command, each with an
// options struct and a run function that tests can call without the flag parser.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes shared by every command.
const (
	ExitOK     = 0
	ExitError  = 1
	ExitUsage  = 2
	ExitFailed = 3 // a deployment ended rolled back or failed
)

// usageError marks errors caused by how the command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// Main runs the command line and returns the process exit code.
func Main(args []string) int {
	root := NewRootCmd(os.Stdout, os.Stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(os.Stderr, "bluegreen:", err)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return ExitUsage
	}
	var de *deploymentEndedError
	if errors.As(err, &de) {
		return ExitFailed
	}
	return ExitError
}

// isCobraUsage recognises the errors cobra itself returns for a command line it
// cannot take (an unknown command, a wrong number of arguments); cobra gives
// them no type of their own.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, prefix := range []string{"unknown command ", "accepts ", "requires at least ", "requires at most ", "accepts between ", "unknown flag", "unknown shorthand flag"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// NewRootCmd builds the command tree writing to the given streams.
func NewRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "bluegreen",
		Short:         "Blue/green deployments with a built-in router",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{plainFlagError(err)} })
	root.AddCommand(
		newVersionCmd(),
		newRouterCmd(),
		newInitCmd(),
		newValidateCmd(),
		newBackupCmd(),
		newRestoreCmd(),
		newServerCmd(),
		newInstanceShimCmd(),
		newQuickstartCmd(),
		newLoadCmd(),
	)
	root.AddCommand(newTokenCmd(), newParamsCmd())
	root.AddCommand(
		newDeployCmd(),
		newStatusCmd(),
		newPromoteCmd(),
		newAbortCmd(),
		newRollbackCmd(),
		newPauseCmd(),
		newResumeCmd(),
		newMaintenanceCmd(),
		newHistoryCmd(),
		newAppsCmd(),
		newLogsCmd(),
		newEventsCmd(),
	)
	return root
}

// badNumber is how the flag parser words a value that is not a number.
var badNumber = regexp.MustCompile(`^invalid argument "(.*)" for "(.*?)" flag: strconv\.Parse(?:Int|Uint|Float): parsing ".*": (?:invalid syntax|value out of range)$`)

// plainFlagError words the flag parser's complaint about a number the way
// people read it: `--to: "abc" is not a number`.
func plainFlagError(err error) error {
	if m := badNumber.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("%s: %q is not a number", m[2], m[1])
	}
	return err
}
