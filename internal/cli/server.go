package cli

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"bluegreen/internal/server"
)

type serverOptions struct {
	DataDir   string
	API       string
	LogFormat string
	StopAll   bool
}

func newServerCmd() *cobra.Command {
	var o serverOptions
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane: the store, the deployment engine, the API, and the router it drives",
		Long: `Run the control plane over a data directory: the store, the deployment engine
and the API. The router runs as its own process, started by the server (or
adopted when one is already running for this data directory), and so do the
apps' instances. SIGTERM or SIGINT stops the server but leaves the router and
the apps running: the next start adopts them and resumes every deployment
where it stood.`,
		Example: `  bluegreen server
  bluegreen server --data /var/lib/bluegreen --api 127.0.0.1:7070`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runServer(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&o.DataDir, "data", "", "data directory (default $"+DataEnv+" or ./.bluegreen)")
	cmd.Flags().StringVar(&o.API, "api", server.DefaultAPIAddr, "API address (host:port)")
	cmd.Flags().StringVar(&o.LogFormat, "log-format", "auto", "log format: text, json, or auto (text on a terminal)")
	cmd.Flags().BoolVar(&o.StopAll, "stop-all", false, "stop every instance and the router the server left running, then exit (the server must be stopped)")
	return cmd
}

func runServer(ctx context.Context, o serverOptions, stdout, stderr io.Writer) error {
	log, err := newLogger(stderr, o.LogFormat)
	if err != nil {
		return usageError{err}
	}
	if o.DataDir == "" {
		o.DataDir = defaultDataDir()
	}
	if o.StopAll {
		n, err := server.StopAll(ctx, server.StopAllOptions{DataDir: o.DataDir, Logger: log})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "stopped %d instances and the router of %s\n", n, o.DataDir)
		return nil
	}
	return server.Run(ctx, server.Options{DataDir: o.DataDir, APIAddr: o.API, Logger: log})
}
