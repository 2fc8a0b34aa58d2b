package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"bluegreen/internal/auth"
)

// newTokenCmd is `bluegreen token`: API tokens and their roles.
func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens (needs an admin token)",
		Long: `API tokens authenticate every call to the server. Each has a role:

  viewer    reads apps, revisions, deployments, events, instances, logs and
            params (not the values of secure params)
  deployer  also uploads revisions, deploys, promotes, aborts, rolls back,
            writes params and reads secure values
  admin     also creates, lists and revokes tokens

The server keeps only a hash of each token: a token is shown once, when it is
created. At its first start the server writes an admin token to admin.token in
its data directory.`,
		Args: groupArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newTokenCreateCmd(), newTokenListCmd(), newTokenRevokeCmd())
	return cmd
}

// groupArgs refuses a subcommand a command group does not have.
func groupArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("unknown command %q for %q; see %s --help", args[0], cmd.CommandPath(), cmd.CommandPath())}
	}
	return nil
}

// argsExactly wants n arguments, named in what (e.g. "ID").
func argsExactly(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s takes %s, got %d arguments (usage: %s)", cmd.CommandPath(), what, len(args), cmd.UseLine())}
		}
		for _, a := range args {
			if a == "" {
				return usageError{fmt.Errorf("%s: %s is empty", cmd.CommandPath(), what)}
			}
		}
		return nil
	}
}

type tokenCreateOptions struct {
	Remote remoteOptions
	Name   string
	Role   string
	JSON   bool
}

func newTokenCreateCmd() *cobra.Command {
	var o tokenCreateOptions
	cmd := &cobra.Command{
		Use:   "create --role viewer|deployer|admin [--name NAME]",
		Short: "Make a token; its secret is printed this once",
		Long: `Make a token with a role and print its secret on standard output (the note
about it goes to standard error, so the secret can be captured). The server
does not keep the secret: store it now.`,
		Example: `  bluegreen token create --role viewer --name dashboard
  BLUEGREEN_TOKEN=$(bluegreen token create --role deployer --name ci)
  bluegreen token create --role admin --name alice --json`,
		Args: argsExactly(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTokenCreate(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	cmd.Flags().StringVar(&o.Role, "role", "", "viewer, deployer or admin (required)")
	cmd.Flags().StringVar(&o.Name, "name", "", "who or what uses the token, e.g. ci (default: the role)")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the token, secret included, as JSON")
	addRemoteFlags(cmd, &o.Remote)
	return cmd
}

func runTokenCreate(ctx context.Context, stdout, stderr io.Writer, o tokenCreateOptions) error {
	if o.Role == "" {
		return usageError{fmt.Errorf("token create: --role is required: viewer, deployer or admin")}
	}
	if _, err := auth.ParseRole(o.Role); err != nil {
		return usageError{fmt.Errorf("token create: --role: %w", err)}
	}
	if o.Name == "" {
		o.Name = o.Role
	}
	if err := auth.ValidateName(o.Name); err != nil {
		return usageError{fmt.Errorf("token create: --name: %w", err)}
	}
	c, err := o.Remote.client()
	if err != nil {
		return err
	}
	tok, err := c.CreateToken(ctx, o.Name, o.Role)
	if err != nil {
		return fmt.Errorf("token create: %w", err)
	}
	if o.JSON {
		return writeIndentedJSON(stdout, tok)
	}
	fmt.Fprintln(stdout, tok.Secret)
	fmt.Fprintf(stderr, "created token %s %q with role %s. The secret above is shown only this once: keep it safe, and use it with --token or $%s.\n",
		tok.ID, tok.Name, tok.Role, TokenEnv)
	return nil
}

type tokenListOptions struct {
	Remote remoteOptions
	JSON   bool
}

func newTokenListCmd() *cobra.Command {
	var o tokenListOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tokens (never their secrets), revoked ones included",
		Example: `  bluegreen token list
  bluegreen token list --json`,
		Args: argsExactly(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTokenList(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON")
	addRemoteFlags(cmd, &o.Remote)
	return cmd
}

func runTokenList(ctx context.Context, out io.Writer, o tokenListOptions) error {
	c, err := o.Remote.client()
	if err != nil {
		return err
	}
	toks, err := c.Tokens(ctx)
	if err != nil {
		return fmt.Errorf("token list: %w", err)
	}
	if o.JSON {
		return writeIndentedJSON(out, toks)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED\tLAST USED\tSTATE")
	for _, t := range toks {
		state := "active"
		if t.RevokedAt != nil {
			state = "revoked " + t.RevokedAt.Local().Format(time.DateTime)
		}
		used := "never"
		if t.LastUsedAt != nil {
			used = t.LastUsedAt.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, t.CreatedAt.Local().Format(time.DateTime), used, state)
	}
	return tw.Flush()
}

type tokenRevokeOptions struct {
	Remote remoteOptions
	ID     string
}

func newTokenRevokeCmd() *cobra.Command {
	var o tokenRevokeOptions
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token for good (the last admin token cannot be revoked)",
		Example: `  bluegreen token list
  bluegreen token revoke t-3f9a0c12d4e5`,
		Args: argsExactly(1, "one token ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ID = args[0]
			return runTokenRevoke(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	addRemoteFlags(cmd, &o.Remote)
	return cmd
}

func runTokenRevoke(ctx context.Context, out io.Writer, o tokenRevokeOptions) error {
	c, err := o.Remote.client()
	if err != nil {
		return err
	}
	tok, err := c.RevokeToken(ctx, o.ID)
	if err != nil {
		return fmt.Errorf("token revoke %s: %w", o.ID, err)
	}
	fmt.Fprintf(out, "revoked token %s %q (role %s)\n", tok.ID, tok.Name, tok.Role)
	return nil
}

// writeIndentedJSON prints v as indented JSON, the --json output of the
// token and params commands.
func writeIndentedJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
