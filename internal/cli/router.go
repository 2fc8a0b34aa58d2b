package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"bluegreen/internal/router"
)

type routerOptions struct {
	config          string
	shutdownTimeout time.Duration
	logFormat       string
	accessLog       string
	takeOver        bool
}

func newRouterCmd() *cobra.Command {
	opts := routerOptions{}
	cmd := &cobra.Command{
		Use:   "router --config routes.yaml",
		Short: "Run the router alone from a route file",
		Long: `Run the router alone, from a route file, for switching traffic from your own
tooling. SIGHUP re-reads the file (an invalid file is logged and the running
table stays). SIGTERM or SIGINT stops accepting, lets requests in flight finish
within --shutdown-timeout, and exits.

The admin listener (admin: in the file) serves GET /routes, PUT /routes (a new
table as JSON of the file's shape, applied atomically), GET /stats, POST /drain
and GET /metrics.

With --take-over (and a unix: admin socket), a new router takes the listening
sockets over from the one running on that socket, which then stops accepting,
lets what it serves finish and exits: no connection is refused. The router a
server runs is replaced so by "bluegreen router upgrade".`,
		Example: `  bluegreen router --config routes.yaml
  curl -s 127.0.0.1:9100/routes
  curl -s -X PUT --data-binary @table.json 127.0.0.1:9100/routes
  kill -HUP <pid>    # re-read routes.yaml
  bluegreen router --config routes.yaml --take-over    # a new binary, no gap`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.config == "" {
				return usageError{errors.New("router: --config FILE is required")}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runRouter(ctx, opts, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&opts.config, "config", "", "route file (YAML)")
	cmd.Flags().DurationVar(&opts.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long requests in flight may take to finish at shutdown")
	cmd.Flags().StringVar(&opts.logFormat, "log-format", "auto", "log format: text, json, or auto (text on a terminal)")
	cmd.Flags().StringVar(&opts.accessLog, "access-log", "", "file the access lines of apps with access_log go to, appended (default: the router's output)")
	cmd.Flags().BoolVar(&opts.takeOver, "take-over", false, "take the listeners over from the router running on the file's admin socket, which then drains and exits")
	cmd.AddCommand(newRouterUpgradeCmd())
	return cmd
}

func runRouter(ctx context.Context, opts routerOptions, stderr io.Writer) error {
	log, err := newLogger(stderr, opts.logFormat)
	if err != nil {
		return usageError{err}
	}
	cfg, err := router.LoadFile(opts.config)
	if err != nil {
		return err
	}
	var access io.Writer = stderr
	if opts.accessLog != "" {
		f, err := os.OpenFile(opts.accessLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("opening the access log: %w", err)
		}
		defer f.Close()
		access = f
	}
	r := router.New(router.Options{Logger: log, AccessLog: access})
	stopNow := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Shutdown(ctx)
	}
	if opts.takeOver {
		if err := takeOver(ctx, r, cfg, log); err != nil {
			stopNow()
			return fmt.Errorf("%s: %w", opts.config, err)
		}
	} else if _, err := r.Apply(cfg); err != nil {
		stopNow()
		return fmt.Errorf("%s: %w", opts.config, err)
	}
	if cfg.Admin != "" && !opts.takeOver {
		addr, err := r.ListenAdmin(cfg.Admin)
		if err != nil {
			stopNow()
			return err
		}
		log.Info("admin API listening", "addr", addr.String())
	}
	log.Info("router ready", "config", opts.config, "listeners", r.ListenerAddrs())

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			next, err := router.LoadFile(opts.config)
			if err == nil && next.Admin != cfg.Admin {
				err = fmt.Errorf("admin: the admin address changed from %q to %q; restart the router to move it", cfg.Admin, next.Admin)
			}
			if err == nil {
				_, err = r.Apply(next)
			}
			if err != nil {
				log.Error("reload rejected; the running table stays", "config", opts.config, "err", err)
				continue
			}
			log.Info("reloaded", "config", opts.config, "generation", r.Generation())
		case <-r.HandedOver():
			log.Info("handed over; draining", "successor", r.Successor(), "timeout", opts.shutdownTimeout.String())
			sctx, cancel := context.WithTimeout(context.Background(), opts.shutdownTimeout)
			defer cancel()
			if err := r.Shutdown(sctx); err != nil {
				log.Warn("requests were still open at the shutdown deadline and were closed")
			}
			log.Info("drained; exiting")
			return nil
		case <-ctx.Done():
			log.Info("shutting down", "timeout", opts.shutdownTimeout.String())
			sctx, cancel := context.WithTimeout(context.Background(), opts.shutdownTimeout)
			defer cancel()
			if err := r.Shutdown(sctx); err != nil {
				log.Warn("requests were still open at the shutdown deadline and were closed")
			}
			return nil
		}
	}
}
