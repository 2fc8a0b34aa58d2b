package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"bluegreen/internal/api"
)

// historyOptions are the inputs of `bluegreen history`.
type historyOptions struct {
	Remote remoteOptions
	App    string
	JSON   bool
}

func newHistoryCmd() *cobra.Command {
	var o historyOptions
	cmd := &cobra.Command{
		Use:   "history APP",
		Short: "List the app's deployments, newest first",
		Long: `List the app's last 100 deployments, newest first: the ID, the revisions it
went from and to, how it ended and why, when it started and how long it took,
and who started it (the token's name and the address it came from).
An active deployment shows its phase. For an app that runs images, each
deployment also shows the image its revision runs: the reference and the
image ID it was pinned to when the revision was created; for a stack, the
services of its revision.`,
		Example: `  bluegreen history shop
  bluegreen history shop --json | jq '.[0].reason'`,
		Args: exactlyOneApp("history"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App = args[0]
			return runHistory(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	addRemoteFlags(cmd, &o.Remote)
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the deployments as JSON")
	return cmd
}

func runHistory(ctx context.Context, o historyOptions, out io.Writer) error {
	c, err := o.Remote.client()
	if err != nil {
		return err
	}
	// The listing of an unknown app is empty; say it does not exist.
	if _, err := c.App(ctx, o.App); err != nil {
		return explain(err, "reading app "+o.App)
	}
	ds, err := c.Deployments(ctx, o.App)
	if err != nil {
		return explain(err, "listing the deployments of "+o.App)
	}
	if o.JSON {
		return printJSON(out, ds)
	}
	revs, err := c.Revisions(ctx, o.App)
	if err != nil {
		return explain(err, "listing the revisions of "+o.App)
	}
	images := map[int64]*api.Image{}
	services := map[int64][]string{}
	for _, r := range revs {
		if r.Image != nil {
			images[r.Generation] = r.Image
		}
		if len(r.Services) > 0 {
			services[r.Generation] = r.Services
		}
	}
	return writeHistory(out, ds, images, services, time.Now())
}

// writeHistory prints deployments as a table, with the image of each
// deployment's revision when there are images, and its services when a
// revision is a stack; now is when an active deployment's running time is
// counted to.
func writeHistory(out io.Writer, ds []api.Deployment, images map[int64]*api.Image, services map[int64][]string, now time.Time) error {
	if len(ds) == 0 {
		_, err := fmt.Fprintln(out, "no deployments yet")
		return err
	}
	// The table holds each reason's first line; the lines after it (a
	// failed green's last output, say) follow their row, indented.
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 4, 2, ' ', 0)
	head := "ID\tREVISION\tOUTCOME\tSTARTED\tTOOK\tREASON"
	if len(images) > 0 {
		head = "ID\tREVISION\tIMAGE\tOUTCOME\tSTARTED\tTOOK\tREASON"
	}
	if len(services) > 0 {
		head = strings.Replace(head, "\tOUTCOME", "\tSERVICES\tOUTCOME", 1)
	}
	// Who started each deployment, once the server records it.
	withBy := slices.ContainsFunc(ds, func(d api.Deployment) bool { return d.StartedBy != nil })
	if withBy {
		head = strings.Replace(head, "TOOK", "TOOK\tBY", 1)
	}
	fmt.Fprintln(tw, head)
	more := make([][]string, len(ds))
	for i, d := range ds {
		rev := fmt.Sprint(d.ToRevision)
		if d.FromRevision > 0 {
			rev = fmt.Sprintf("%d → %d", d.FromRevision, d.ToRevision)
		}
		if len(images) > 0 {
			image := "-"
			if img := images[d.ToRevision]; img != nil {
				image = img.Ref + " (" + shortImageID(img.ID) + ")"
			}
			rev += "\t" + image
		}
		if len(services) > 0 {
			list := "-"
			if svcs := services[d.ToRevision]; len(svcs) > 0 {
				list = strings.Join(svcs, ",")
			}
			rev += "\t" + list
		}
		outcome, end := outcomeWords(d.Outcome), now
		if d.Outcome == "" {
			outcome = "active: " + d.Phase
		}
		if d.FinishedAt != nil {
			end = *d.FinishedAt
		}
		reason := strings.Split(strings.TrimRight(d.Reason, "\n"), "\n")
		more[i] = reason[1:]
		took := shortDuration(end.Sub(d.CreatedAt))
		if withBy {
			by := "-"
			if d.StartedBy != nil {
				by = d.StartedBy.String()
			}
			took += "\t" + by
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, rev, outcome, d.CreatedAt.Local().Format("2006-01-02 15:04:05"),
			took, reason[0])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	rows := strings.Split(strings.TrimRight(table.String(), "\n"), "\n")
	var b strings.Builder
	for i, row := range rows {
		b.WriteString(row + "\n")
		if i > 0 {
			for _, l := range more[i-1] {
				b.WriteString("    " + l + "\n")
			}
		}
	}
	_, err := io.WriteString(out, b.String())
	return err
}
