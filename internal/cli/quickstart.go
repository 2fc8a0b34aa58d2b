package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"bluegreen/internal/loadgen"
	"bluegreen/internal/quickstart"
)

type quickstartOptions struct {
	Keep     bool
	Dir      string
	Rate     int
	Platform string
}

func newQuickstartCmd() *cobra.Command {
	var o quickstartOptions
	cmd := &cobra.Command{
		Use:   "quickstart",
		Short: "A real blue/green deployment on this machine, in under a minute",
		Long: `Build the example app (examples/hello, with go build), start a server over a
fresh data directory, deploy v1, drive steady traffic from a separate process,
deploy v2 with a canary strategy (10 % → 50 % → 100 %, checked against v1)
while showing its progress, then print what the traffic saw: requests served,
failed requests, when each traffic step happened and how long the switch took.

With --platform docker the app runs as containers on the Docker engine the
server finds (DOCKER_HOST, else /var/run/docker.sock): the example is built
as a static binary into two images, bluegreen-hello:v1 and bluegreen-hello:v2
(FROM scratch, built through the engine's API; nothing is pulled), v1 is
deployed with a spec of platform docker, and v2 the way a CI job deploys a
pushed image (deploy --image), under the same load and canary. The summary
adds the image ID each revision pinned. An engine that does not answer stops
the quickstart before it starts anything. The images are kept for the next
run; the containers are stopped.

Everything it starts is stopped at the end, or on Ctrl-C; --keep leaves the
server, the router and v2 running for exploration. Run it from a bluegreen
checkout.`,
		Example: `  go run ./cmd/bluegreen quickstart
  go run ./cmd/bluegreen quickstart --keep
  go run ./cmd/bluegreen quickstart --platform docker
  DOCKER_HOST=unix:///run/user/1000/docker.sock go run ./cmd/bluegreen quickstart --platform docker`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runQuickstart(ctx, o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&o.Keep, "keep", false, "leave the server, the router and the app running at the end")
	cmd.Flags().StringVar(&o.Dir, "dir", "", "directory for everything the run creates (default: a new temporary directory)")
	cmd.Flags().IntVar(&o.Rate, "rate", 100, "steady traffic, requests per second")
	cmd.Flags().StringVar(&o.Platform, "platform", quickstart.PlatformProcess, "where the app runs: "+strings.Join(quickstart.Platforms, " or "))
	return cmd
}

func runQuickstart(ctx context.Context, o quickstartOptions, out io.Writer) (err error) {
	if o.Rate <= 0 || o.Rate > 5000 {
		return usageError{fmt.Errorf("quickstart: --rate must be between 1 and 5000, got %d", o.Rate)}
	}
	if !slices.Contains(quickstart.Platforms, o.Platform) {
		return usageError{fmt.Errorf("quickstart: --platform must be %s, got %q", strings.Join(quickstart.Platforms, " or "), o.Platform)}
	}
	if o.Platform == quickstart.PlatformDocker {
		// Before anything is made or started.
		p, err := quickstart.OpenDocker(ctx)
		if err != nil {
			return fmt.Errorf("quickstart: %w", err)
		}
		p.Close()
	}
	src, err := moduleRoot()
	if err != nil {
		return err
	}
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "bluegreen-quickstart-"); err != nil {
			return err
		}
		// A directory of its own making goes at the end, with the data
		// directory and its admin token, unless something is left to look
		// at: the running apps (--keep) or a failure's logs.
		defer func() {
			if o.Keep || err != nil && !errors.Is(ctx.Err(), context.Canceled) {
				return
			}
			if rerr := os.RemoveAll(dir); rerr != nil {
				fmt.Fprintf(out, "could not remove %s: %v\n", dir, rerr)
			}
		}()
		// Passable (not listable): as root, the app runs as a user of its
		// own, which must reach its revision in the data directory below.
		if err := os.Chmod(dir, 0o711); err != nil {
			return err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// The server, the router and the instance shims run this binary; `go
	// run` deletes its copy when it exits, so they get one of their own.
	self, err := copySelf(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "bluegreen quickstart (files in %s)\n", dir)
	qo := quickstart.Options{Self: self, Source: src, Dir: dir, Keep: o.Keep, Rate: o.Rate, Platform: o.Platform, Out: out}
	s, err := quickstart.Run(ctx, qo)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return errors.New("quickstart: interrupted; everything it started is stopped")
		}
		return fmt.Errorf("quickstart: %w (its files are kept in %s)", err, dir)
	}
	s.Print(qo)
	if s.Failed > 0 {
		return fmt.Errorf("quickstart: %d of %d requests failed", s.Failed, s.Requests)
	}
	return nil
}

// moduleRoot finds the bluegreen checkout the command runs in: the nearest
// directory up from the working directory whose go.mod declares module
// bluegreen.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), "module bluegreen\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("quickstart: run it from a bluegreen checkout (it builds examples/hello with go build)")
		}
		dir = parent
	}
}

func copySelf(dir string) (string, error) {
	src, err := os.Executable()
	if err != nil {
		return "", err
	}
	dst := filepath.Join(dir, "bluegreen")
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	outf, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(outf, in); err != nil {
		outf.Close()
		return "", err
	}
	return dst, outf.Close()
}

// newLoadCmd is the load generator (as cmd/bgload) inside the binary, so
// the quickstart can run its traffic as a separate process.
func newLoadCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "load",
		Short:              "Send steady HTTP load (used by the quickstart)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := loadgen.Main("bluegreen load", args, cmd.OutOrStdout(), cmd.ErrOrStderr()); code != 0 {
				os.Exit(code)
			}
			return nil
		},
	}
}
