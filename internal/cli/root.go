// Package cli holds bluegreen's commands: one file per command, each with an
// options struct and a run function that tests can call without the flag parser.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

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
	if errors.As(err, &ue) {
		return ExitUsage
	}
	return ExitError
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
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newVersionCmd(),
		newRouterCmd(),
		newValidateCmd(),
		newBackupCmd(),
		newRestoreCmd(),
	)
	return root
}
