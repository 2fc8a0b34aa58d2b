package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"bluegreen/internal/api"
	"bluegreen/internal/engine"
	"bluegreen/internal/spec"
)

// deployOptions are the inputs of `bluegreen deploy`.
type deployOptions struct {
	Remote remoteOptions
	Source string // a bundle directory or archive
	File   string // a spec file replacing the bundle's bluegreen.yaml
	// Image, when set, makes the revision from the live spec of the app
	// named by Source with this image instead of uploading a bundle.
	Image   string
	Message string
	Wait    bool
	// WaitRetired waits past the release until blue has retired.
	WaitRetired bool
	// TTY redraws the progress in place (set when stdout is a terminal).
	TTY bool
}

func newDeployCmd() *cobra.Command {
	var o deployOptions
	cmd := &cobra.Command{
		Use:   "deploy [DIR|ARCHIVE] | deploy --image REF APP",
		Short: "Upload a revision and start its deployment",
		Long: `Upload a revision of an app and start deploying it: the new revision runs
beside the live one (green beside blue), is validated and tested, then takes
production traffic as its spec's strategy says.

DIR (default: the current directory) is packed into a .tar.gz on the fly;
an ARCHIVE (.tar.gz, .tgz, .tar or .zip) is sent as it is. Either holds the
app's bluegreen.yaml at its root; -f uses another spec file instead (it is
put into the bundle as bluegreen.yaml, so the revision keeps it).

With --image REF APP nothing is uploaded: the new revision is the app's
live spec with docker.image set to REF, and the live revision's hooks and
files (the step a CI job takes after docker build and docker push). The
server pins REF to the image's ID when the revision is created, so the
revision runs that image even after the tag moves.

It prints the revision and the deployment's ID. With --wait it then shows
the progress until the deployment is released (green has all the traffic,
has passed its bake and is live; blue stays warm for a while, then retires):
a checklist of phases, the traffic split and the latest check's numbers,
redrawn in place on a terminal, or a line per event otherwise.
--wait-retired waits on until blue has retired and the deployment has ended.

Before anything is uploaded, a directory's spec is checked as validate does,
and a deployment of the app still in progress is reported.

Exit codes: 0 started (with --wait: released), 1 error, 2 usage,
3 (with --wait) the deployment rolled back or failed.`,
		Example: `  bluegreen deploy                        # the current directory
  bluegreen deploy ./build --message "fix the cart" --wait
  bluegreen deploy app.tar.gz -f staging.yaml
  bluegreen deploy --image registry.example:5000/shop:2.4.1 shop --wait`,
		Args: func(_ *cobra.Command, args []string) error {
			if o.Image != "" {
				if len(args) != 1 {
					return usageError{fmt.Errorf("deploy --image REF takes the app's name, got %d arguments", len(args))}
				}
				if o.File != "" {
					return usageError{errors.New("deploy --image takes the app's live spec: -f does not apply")}
				}
				return nil
			}
			if len(args) > 1 {
				return usageError{fmt.Errorf("deploy takes one directory or archive, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Source = "."
			if len(args) == 1 {
				o.Source = args[0]
			}
			o.TTY = isTerminal(cmd.OutOrStdout())
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runDeploy(ctx, o, cmd.OutOrStdout())
		},
	}
	addRemoteFlags(cmd, &o.Remote)
	cmd.Flags().StringVarP(&o.File, "file", "f", "", "spec file to use instead of the bundle's bluegreen.yaml")
	cmd.Flags().StringVarP(&o.Message, "message", "m", "", "a note kept with the revision")
	cmd.Flags().StringVar(&o.Image, "image", "", "deploy the app named by the argument with this image (its live spec otherwise)")
	cmd.Flags().BoolVarP(&o.Wait, "wait", "w", false, "show the progress until green is live (released); exit 3 if it rolls back or fails")
	cmd.Flags().BoolVar(&o.WaitRetired, "wait-retired", false, "with --wait: go on waiting until blue has retired and the deployment has ended")
	return cmd
}

// runDeploy uploads the bundle, starts the deployment and, with Wait,
// follows it to its end.
func runDeploy(ctx context.Context, o deployOptions, out io.Writer) error {
	c, err := o.Remote.client()
	if err != nil {
		return err
	}
	var rev api.Revision
	if o.Image != "" {
		rev, err = c.CreateImageRevision(ctx, o.Source, o.Image, o.Message)
		if err != nil {
			return explain(err, fmt.Sprintf("making a revision of %s with image %s", o.Source, o.Image))
		}
		fmt.Fprintf(out, "created revision %d of %s: image %s (%s)\n", rev.Generation, rev.App, rev.Image.Ref, shortImageID(rev.Image.ID))
	} else if rev, err = uploadBundle(ctx, c, o, out); err != nil {
		return err
	}
	d, err := c.Deploy(ctx, rev.App, rev.Generation)
	if err != nil {
		return explain(err, fmt.Sprintf("deploying revision %d of %s", rev.Generation, rev.App))
	}
	from := ""
	if d.FromRevision > 0 {
		from = fmt.Sprintf(", revision %d → %d", d.FromRevision, d.ToRevision)
	}
	fmt.Fprintf(out, "started deployment %s%s\n", d.ID, from)
	if !o.Wait && !o.WaitRetired {
		fmt.Fprintf(out, "follow it with: bluegreen status %s --watch\n", d.App)
		return nil
	}
	return waitDeployment(ctx, c, d, out, o.TTY, !o.WaitRetired)
}

// uploadBundle checks, packs and uploads the bundle o names.
func uploadBundle(ctx context.Context, c *api.Client, o deployOptions, out io.Writer) (api.Revision, error) {
	if err := checkBeforeUpload(ctx, c, o); err != nil {
		return api.Revision{}, err
	}
	bundle, err := openBundle(o.Source, o.File)
	if err != nil {
		return api.Revision{}, usageError{err}
	}
	defer bundle.Close()
	rev, err := c.UploadRevision(ctx, bundle, o.Message)
	if err != nil {
		return api.Revision{}, explain(err, "uploading "+o.Source)
	}
	if p, ok := bundle.(*packed); ok {
		// The server canonicalises what it receives the same way: the
		// digests differ only if the bytes changed on the way.
		if want := "bundle:" + string(p.Digest()); rev.Source != want {
			return api.Revision{}, fmt.Errorf("uploading %s: the server stored %s, but the bundle packed here is %s", o.Source, rev.Source, want)
		}
	}
	msg := fmt.Sprintf("uploaded revision %d of %s", rev.Generation, rev.App)
	if rev.Image != nil {
		msg += fmt.Sprintf(": image %s (%s)", rev.Image.Ref, shortImageID(rev.Image.ID))
	}
	fmt.Fprintln(out, msg)
	return rev, nil
}

// shortImageID is an image ID as docker shows it: 12 hex digits.
func shortImageID(id string) string {
	h := strings.TrimPrefix(id, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

// checkBeforeUpload refuses, before a byte is sent, what the server would
// refuse anyway: a directory without its spec, a spec with problems, an app
// whose deployment is still in progress.
func checkBeforeUpload(ctx context.Context, c *api.Client, o deployOptions) error {
	info, err := os.Stat(o.Source)
	if err != nil {
		return usageError{fmt.Errorf("bundle: %w", err)}
	}
	if !info.IsDir() {
		return nil // an archive: the server reads its spec
	}
	file := o.File
	if _, err := os.Stat(file); file != "" && errors.Is(err, fs.ErrNotExist) {
		return usageError{fmt.Errorf("the spec file %s does not exist", file)}
	}
	if file == "" {
		file = filepath.Join(o.Source, spec.FileName)
		if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
			return usageError{fmt.Errorf("%s has no %s: write one (`bluegreen init %s` starts one), or name one with -f", o.Source, spec.FileName, o.Source)}
		}
	}
	s, err := spec.ParseFile(file)
	if err == nil {
		err = s.CheckBundle(os.DirFS(o.Source))
	}
	var problems *spec.Errors
	if errors.As(err, &problems) {
		return fmt.Errorf("%s has %s; nothing was uploaded:\n%s", file, plural(len(problems.Problems), "problem"), problems.Error())
	}
	if err != nil {
		return err
	}
	a, err := c.App(ctx, s.App)
	var ae *api.Error
	switch {
	case errors.As(err, &ae) && ae.Status == 404:
		return nil // a new app
	case err != nil:
		return explain(err, "reading app "+s.App)
	case a.Deployment != nil:
		d := a.Deployment
		return fmt.Errorf("app %s has a deployment in progress (%s, %s); nothing was uploaded: wait for it to end (`bluegreen status %s --watch`) or abort it (`bluegreen abort %s`)",
			s.App, d.ID, d.Phase, s.App, s.App)
	}
	return nil
}

// waitDeployment follows d to its end; a deployment that rolled back or
// failed is a deploymentEndedError (exit code 3).
func waitDeployment(ctx context.Context, c *api.Client, d api.Deployment, out io.Writer, tty, released bool) error {
	final, err := watchDeployment(ctx, c, d, out, tty, released)
	if err != nil {
		return err
	}
	if final.Outcome != "succeeded" && !(released && final.Outcome == "" && final.Phase == engine.PhaseRetiring) {
		return &deploymentEndedError{final}
	}
	return nil
}
