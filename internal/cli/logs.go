package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os/signal"
	"slices"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"bluegreen/internal/api"
	"bluegreen/internal/engine"
)

// logsOptions are the inputs of `bluegreen logs`.
type logsOptions struct {
	Remote   remoteOptions
	App      string
	Fleet    string // blue or green; "" for the live fleet
	Instance string // one instance; overrides Fleet
	Follow   bool
	Tail     int
}

func newLogsCmd() *cobra.Command {
	var o logsOptions
	cmd := &cobra.Command{
		Use:   "logs APP",
		Short: "Show the output of the app's instances",
		Long: `Show what the app's instances wrote (stdout and stderr): those of the live
fleet, of --fleet blue|green, or one --instance. With more than one instance,
each line starts with the instance's ID. -f keeps following the output until
interrupted or the instances are gone.`,
		Example: `  bluegreen logs shop
  bluegreen logs shop --fleet green -f
  bluegreen logs shop --instance shop-4-green-0 --tail 20`,
		Args: exactlyOneApp("logs"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App = args[0]
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runLogs(ctx, o, cmd.OutOrStdout())
		},
	}
	addRemoteFlags(cmd, &o.Remote)
	cmd.Flags().StringVar(&o.Fleet, "fleet", "", "the fleet: blue or green (default: the live fleet)")
	cmd.Flags().StringVar(&o.Instance, "instance", "", "one instance, by ID (see `bluegreen status`)")
	cmd.Flags().BoolVarP(&o.Follow, "follow", "f", false, "keep following the output")
	cmd.Flags().IntVar(&o.Tail, "tail", 100, "lines of each instance to show first (0: all kept)")
	return cmd
}

func runLogs(ctx context.Context, o logsOptions, out io.Writer) error {
	if o.Fleet != "" && o.Fleet != "blue" && o.Fleet != "green" {
		return usageError{fmt.Errorf("--fleet must be blue or green, not %q", o.Fleet)}
	}
	if o.Tail < 0 {
		return usageError{fmt.Errorf("--tail must be 0 or more, not %d", o.Tail)}
	}
	c, err := o.Remote.client()
	if err != nil {
		return err
	}
	ids, err := logInstances(ctx, c, o)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(ids))
	for i, id := range ids {
		prefix := ""
		if len(ids) > 1 {
			prefix = "[" + id + "] "
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = copyLogs(ctx, c, o, id, prefix, out, &mu)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return errors.Join(errs...)
}

// logInstances picks the instances whose output to show.
func logInstances(ctx context.Context, c *api.Client, o logsOptions) ([]string, error) {
	a, err := c.App(ctx, o.App)
	if err != nil {
		return nil, explain(err, "reading app "+o.App)
	}
	if o.Instance != "" {
		return []string{o.Instance}, nil
	}
	ins, err := c.Instances(ctx, o.App)
	if err != nil {
		return nil, explain(err, "listing the instances of "+o.App)
	}
	role := o.Fleet
	if role == "" {
		role = "blue"
	}
	var ids []string
	for _, in := range ins {
		if instanceRole(a, in) == role {
			ids = append(ids, in.ID)
		}
	}
	if len(ids) == 0 && o.Fleet != "blue" {
		// Nothing runs in that role: the instances of the last deployment
		// (rolled back, or whose green never became live) kept their output.
		if past, err := pastInstances(ctx, c, o.App); err == nil && len(past) > 0 {
			return past, nil
		}
	}
	if len(ids) == 0 {
		switch {
		case role == "green" && a.Deployment == nil:
			return nil, fmt.Errorf("app %s has no green fleet: no deployment is in progress (see `bluegreen status %s`)", o.App, o.App)
		case o.Fleet == "":
			return nil, fmt.Errorf("app %s has no instances", o.App)
		}
		return nil, fmt.Errorf("app %s has no instances in its %s fleet (see `bluegreen status %s`)", o.App, role, o.App)
	}
	return ids, nil
}

// pastInstances names the green instances of the app's last deployment
// when it did not leave them running: their output is kept after they
// stopped.
func pastInstances(ctx context.Context, c *api.Client, app string) ([]string, error) {
	ds, err := c.Deployments(ctx, app)
	if err != nil || len(ds) == 0 || ds[0].Outcome == "" || ds[0].Outcome == "succeeded" {
		return nil, err
	}
	var det struct {
		Slot      string `json:"slot"`
		Instances int    `json:"instances"`
		// Services are a stack's instance counts, by service.
		Services map[string]int `json:"services"`
	}
	if err := json.Unmarshal(ds[0].Details, &det); err != nil || det.Slot == "" {
		return nil, err
	}
	var ids []string
	if len(det.Services) > 0 {
		for _, svc := range slices.Sorted(maps.Keys(det.Services)) {
			for i := range det.Services[svc] {
				ids = append(ids, engine.ServiceInstanceID(app, ds[0].ToRevision, det.Slot, svc, i))
			}
		}
		return ids, nil
	}
	for i := range det.Instances {
		ids = append(ids, engine.InstanceID(app, ds[0].ToRevision, det.Slot, i))
	}
	return ids, nil
}

// instanceRole says which fleet an instance belongs to as people name
// fleets: green is the candidate of the deployment in progress, blue the
// live fleet (or the one the deployment started from). "" for neither.
func instanceRole(a api.App, in api.Instance) string {
	if d := a.Deployment; d != nil {
		switch in.Revision {
		case d.ToRevision:
			return "green"
		case d.FromRevision:
			return "blue"
		}
		return ""
	}
	if in.Revision == a.LiveRevision && in.Fleet == a.LiveFleet {
		return "blue"
	}
	return ""
}

// copyLogs writes one instance's output to out, a line at a time with the
// prefix, under mu so lines of several instances do not mix.
func copyLogs(ctx context.Context, c *api.Client, o logsOptions, id, prefix string, out io.Writer, mu *sync.Mutex) error {
	rc, err := c.FollowLogs(ctx, o.App, id, o.Tail, o.Follow)
	if err != nil {
		return explain(err, "reading the logs of "+id)
	}
	defer rc.Close()
	r := bufio.NewReader(rc)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			if line[len(line)-1] != '\n' {
				line += "\n"
			}
			mu.Lock()
			_, werr := io.WriteString(out, prefix+line)
			mu.Unlock()
			if werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading the logs of %s: %w", id, err)
		}
	}
}
