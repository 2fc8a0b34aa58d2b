package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"bluegreen/internal/spec"
)

// validateOptions are the inputs of `bluegreen validate`.
type validateOptions struct {
	Dir   string // bundle directory; "" when not given
	File  string // spec file; "" means Dir/bluegreen.yaml
	Print bool   // print the effective spec instead of "ok"
}

func newValidateCmd() *cobra.Command {
	var opts validateOptions
	cmd := &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check an app's bluegreen.yaml and the hook files it names",
		Long: `Check DIR/bluegreen.yaml (DIR defaults to the current directory), or the
file given with -f. Every problem is printed, one per line, as
file:line:column: key.path: what is wrong. When the spec is read from DIR,
or DIR is given, the hook files it names must exist in DIR.

--print prints the effective spec: defaults filled in and the strategy
preset expanded into steps.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("validate takes at most one directory, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Dir = args[0]
			}
			return runValidate(cmd.OutOrStdout(), cmd.ErrOrStderr(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.File, "file", "f", "", "spec file (default DIR/"+spec.FileName+")")
	cmd.Flags().BoolVar(&opts.Print, "print", false, "print the effective spec")
	return cmd
}

// runValidate parses the spec, checks the bundle when there is one, and
// reports. Problems go to stderr, one per line; the returned error only sums
// them up, so the exit code is 1.
func runValidate(stdout, stderr io.Writer, opts validateOptions) error {
	file, bundle := opts.File, opts.Dir
	if file == "" {
		if bundle == "" {
			bundle = "."
		}
		file = filepath.Join(bundle, spec.FileName)
	}
	if bundle != "" {
		info, err := os.Stat(bundle)
		if err != nil {
			return usageError{fmt.Errorf("validate: %w", err)}
		}
		if !info.IsDir() {
			return usageError{fmt.Errorf("validate: %s is not a directory (use -f for a spec file)", bundle)}
		}
	}

	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		if opts.File != "" {
			return usageError{fmt.Errorf("validate: the spec file %s does not exist", file)}
		}
		return usageError{fmt.Errorf("validate: %s has no %s: write one (`bluegreen init %s` starts one), or name one with -f", bundle, spec.FileName, bundle)}
	}
	s, err := spec.ParseFile(file)
	if err == nil && bundle != "" {
		err = s.CheckBundle(os.DirFS(bundle))
	}
	var problems *spec.Errors
	if errors.As(err, &problems) {
		fmt.Fprintln(stderr, problems.Error())
		return fmt.Errorf("%s: %s", file, plural(len(problems.Problems), "problem"))
	}
	if err != nil {
		return err
	}

	if opts.Print {
		out, err := s.Marshal()
		if err != nil {
			return err
		}
		_, err = stdout.Write(out)
		return err
	}
	fmt.Fprintf(stdout, "ok: %s (app %s)\n", file, s.App)
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
