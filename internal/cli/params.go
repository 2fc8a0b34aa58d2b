package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"bluegreen/internal/params"
)

// newParamsCmd is `bluegreen params`: the versioned parameter store.
func newParamsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "params",
		Short: "Set, read, list and delete parameters (versioned; secure ones encrypted)",
		Long: `Parameters are named like paths, /APP/NAME, and every write makes a new
version. A revision pins the versions of the params its spec names, and its
instances get them as environment variables named after the last segment
(/shop/DATABASE_URL becomes DATABASE_URL). Secure params are encrypted at rest;
their values are shown to deployer and admin tokens only, and listings always
redact them.`,
		Args: groupArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newParamsSetCmd(), newParamsGetCmd(), newParamsListCmd(), newParamsHistoryCmd(), newParamsRmCmd())
	return cmd
}

// checkParamName makes a bad name a usage error, before any request.
func checkParamName(cmd string, name string) error {
	if err := params.ValidateName(name); err != nil {
		return usageError{fmt.Errorf("params %s: %w", cmd, err)}
	}
	return nil
}

type paramsSetOptions struct {
	Remote        remoteOptions
	Name          string
	Value         string
	HasValue      bool   // Value was given as an argument
	FromFile      string // a file, or "-" for standard input
	Secure        bool
	ExpectVersion int64
	Stdin         io.Reader
}

func newParamsSetCmd() *cobra.Command {
	var o paramsSetOptions
	cmd := &cobra.Command{
		Use:   "set NAME [VALUE]",
		Short: "Write a new version of a param",
		Long: `Write a new version of NAME with VALUE, or with the content of --from-file
(- for standard input; one trailing newline is dropped). --secure encrypts it
at rest and hides it from viewers and listings. A secret given as an argument
can end up in the shell's history: prefer --from-file for those.`,
		Example: `  bluegreen params set /shop/LOG_LEVEL debug
  bluegreen params set /shop/DATABASE_URL --secure --from-file db-url.txt
  printf %s "$API_KEY" | bluegreen params set /shop/API_KEY --secure --from-file -
  bluegreen params set /shop/LOG_LEVEL info --expect-version 3`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageError{fmt.Errorf("params set takes NAME and VALUE (or NAME and --from-file), got %d arguments (usage: %s)", len(args), cmd.UseLine())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			if len(args) == 2 {
				o.Value, o.HasValue = args[1], true
			}
			o.Stdin = cmd.InOrStdin()
			return runParamsSet(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().BoolVar(&o.Secure, "secure", false, "encrypt the value at rest; only deployer and admin tokens can read it")
	cmd.Flags().StringVar(&o.FromFile, "from-file", "", "read the value from this file (- for standard input)")
	cmd.Flags().Int64Var(&o.ExpectVersion, "expect-version", 0, "fail unless this is the latest version (guards against overwriting someone else's change)")
	addRemoteFlags(cmd, &o.Remote)
	return cmd
}

func runParamsSet(ctx context.Context, out io.Writer, o paramsSetOptions) error {
	if err := checkParamName("set", o.Name); err != nil {
		return err
	}
	switch {
	case o.HasValue && o.FromFile != "":
		return usageError{fmt.Errorf("params set %s: give VALUE or --from-file, not both", o.Name)}
	case !o.HasValue && o.FromFile == "":
		return usageError{fmt.Errorf("params set %s: no value: give VALUE or --from-file FILE (- for standard input)", o.Name)}
	case o.ExpectVersion < 0:
		return usageError{fmt.Errorf("params set %s: --expect-version %d: want a version number", o.Name, o.ExpectVersion)}
	}
	value := o.Value
	if o.FromFile != "" {
		var err error
		if value, err = readParamValue(o.FromFile, o.Stdin); err != nil {
			return fmt.Errorf("params set %s: %w", o.Name, err)
		}
	}
	c, err := o.Remote.client()
	if err != nil {
		return err
	}
	p, err := c.PutParam(ctx, o.Name, value, o.Secure, o.ExpectVersion)
	if err != nil {
		return fmt.Errorf("params set %s: %w", o.Name, err)
	}
	fmt.Fprintf(out, "%s: version %d (%s)\n", p.Name, p.Version, p.Type)
	return nil
}

// maxParamValue bounds a value read from a file: the API takes 1 MiB of
// JSON, and a parameter is a setting, not a payload.
const maxParamValue = 512 << 10

// readParamValue reads a file, or stdin for "-", dropping one trailing
// newline (what echo and editors add).
func readParamValue(file string, stdin io.Reader) (string, error) {
	var r io.Reader = stdin
	what := "standard input"
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("--from-file: %w", err)
		}
		defer f.Close()
		r, what = f, file
	}
	if r == nil {
		r = os.Stdin
	}
	b, err := io.ReadAll(io.LimitReader(r, maxParamValue+1))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", what, err)
	}
	if len(b) > maxParamValue {
		return "", fmt.Errorf("%s: value over %d bytes", what, maxParamValue)
	}
	s := strings.TrimSuffix(string(b), "\n")
	return strings.TrimSuffix(s, "\r"), nil
}

type paramsGetOptions struct {
	Remote  remoteOptions
	Name    string
	Version int64
	JSON    bool
}

func newParamsGetCmd() *cobra.Command {
	var o paramsGetOptions
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Print a param's value (the latest version, or --version N)",
		Long: `Print the value of NAME alone, so that it can be captured. The value of a
secure param needs a deployer or admin token.`,
		Example: `  bluegreen params get /shop/LOG_LEVEL
  bluegreen params get /shop/DATABASE_URL --version 2
  bluegreen params get /shop/LOG_LEVEL --json`,
		Args: argsExactly(1, "one param NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			return runParamsGet(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().Int64Var(&o.Version, "version", 0, "read this version instead of the latest")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the version, its type and value as JSON")
	addRemoteFlags(cmd, &o.Remote)
	return cmd
}

func runParamsGet(ctx context.Context, out io.Writer, o paramsGetOptions) error {
	if err := checkParamName("get", o.Name); err != nil {
		return err
	}
	if o.Version < 0 {
		return usageError{fmt.Errorf("params get %s: --version %d: want a version number (1, 2, …)", o.Name, o.Version)}
	}
	c, err := o.Remote.client()
	if err != nil {
		return err
	}
	p, err := c.Param(ctx, o.Name, o.Version)
	if err != nil {
		return fmt.Errorf("params get %s: %w", o.Name, err)
	}
	if o.JSON {
		return writeIndentedJSON(out, p)
	}
	if p.Value != nil {
		fmt.Fprintln(out, *p.Value)
	}
	return nil
}

type paramsListOptions struct {
	Remote remoteOptions
	Prefix string
	JSON   bool
}

func newParamsListCmd() *cobra.Command {
	var o paramsListOptions
	cmd := &cobra.Command{
		Use:   "list [PREFIX]",
		Short: "List the latest version of every param, or of those under PREFIX",
		Long: `List params with their latest version, type and value; values of secure
params are shown as ` + params.Redacted + `. PREFIX is a path: /shop lists /shop/X but
not /shopping/X.`,
		Example: `  bluegreen params list
  bluegreen params list /shop
  bluegreen params list /shop --json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("params list takes at most one PREFIX, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.Prefix = args[0]
			}
			return runParamsList(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON")
	addRemoteFlags(cmd, &o.Remote)
	return cmd
}

func runParamsList(ctx context.Context, out io.Writer, o paramsListOptions) error {
	if o.Prefix != "" && !strings.HasPrefix(o.Prefix, "/") {
		return usageError{fmt.Errorf("params list: prefix %q: must start with /, e.g. /shop", o.Prefix)}
	}
	c, err := o.Remote.client()
	if err != nil {
		return err
	}
	ps, err := c.Params(ctx, o.Prefix)
	if err != nil {
		return fmt.Errorf("params list: %w", err)
	}
	if o.JSON {
		return writeIndentedJSON(out, ps)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tTYPE\tUPDATED\tVALUE")
	for _, p := range ps {
		value := ""
		if p.Value != nil {
			value = *p.Value
		}
		// One line per param: a multi-line value would break the table.
		if i := strings.IndexAny(value, "\r\n"); i >= 0 {
			value = value[:i] + " …"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", p.Name, p.Version, p.Type, p.CreatedAt.Local().Format(time.DateTime), value)
	}
	return tw.Flush()
}

type paramsHistoryOptions struct {
	Remote remoteOptions
	Name   string
	JSON   bool
}

func newParamsHistoryCmd() *cobra.Command {
	var o paramsHistoryOptions
	cmd := &cobra.Command{
		Use:   "history NAME",
		Short: "List every version of a param, deletions included (without values)",
		Example: `  bluegreen params history /shop/DATABASE_URL
  bluegreen params history /shop/DATABASE_URL --json`,
		Args: argsExactly(1, "one param NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			return runParamsHistory(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON")
	addRemoteFlags(cmd, &o.Remote)
	return cmd
}

func runParamsHistory(ctx context.Context, out io.Writer, o paramsHistoryOptions) error {
	if err := checkParamName("history", o.Name); err != nil {
		return err
	}
	c, err := o.Remote.client()
	if err != nil {
		return err
	}
	ps, err := c.ParamHistory(ctx, o.Name)
	if err != nil {
		return fmt.Errorf("params history %s: %w", o.Name, err)
	}
	if o.JSON {
		return writeIndentedJSON(out, ps)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tTYPE\tBY\tAT")
	for _, p := range ps {
		by := p.CreatedBy
		if by == "" {
			by = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", p.Version, p.Type, by, p.CreatedAt.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

type paramsRmOptions struct {
	Remote remoteOptions
	Name   string
}

func newParamsRmCmd() *cobra.Command {
	var o paramsRmOptions
	cmd := &cobra.Command{
		Use:   "rm NAME",
		Short: "Delete a param (revisions pinned to earlier versions keep them)",
		Long: `Delete NAME: a new version of type "deleted" is written, so the history stays
and revisions pinned to earlier versions still deploy and roll back. A new
revision whose spec names the param is refused until it is set again.`,
		Example: `  bluegreen params rm /shop/OLD_FLAG`,
		Args:    argsExactly(1, "one param NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			return runParamsRm(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	addRemoteFlags(cmd, &o.Remote)
	return cmd
}

func runParamsRm(ctx context.Context, out io.Writer, o paramsRmOptions) error {
	if err := checkParamName("rm", o.Name); err != nil {
		return err
	}
	c, err := o.Remote.client()
	if err != nil {
		return err
	}
	p, err := c.DeleteParam(ctx, o.Name)
	if err != nil {
		return fmt.Errorf("params rm %s: %w", o.Name, err)
	}
	fmt.Fprintf(out, "%s: deleted (version %d); revisions pinned to earlier versions keep them\n", p.Name, p.Version)
	return nil
}
