package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/engine"
)

// errWatchDone ends an event stream once the deployment has ended.
var errWatchDone = errors.New("the deployment ended")

// streamRetries is how many times in a row following events reconnects
// after the stream broke (the server restarting, say) before giving up.
const streamRetries = 30

// followEvents calls fn for each event of the filter after seq, as they
// come, reconnecting after the last one seen when the stream breaks. It
// returns fn's error, ctx's, or the error that made it give up.
func followEvents(ctx context.Context, c *api.Client, app, deployment string, after int64, fn func(api.Event) error) error {
	failures := 0
	for {
		err := c.StreamEvents(ctx, app, deployment, after, func(e api.Event) error {
			failures = 0
			after = e.Seq
			if err := fn(e); err != nil {
				return callerError{err}
			}
			return nil
		})
		var ae *api.Error
		var ce callerError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &ce):
			return ce.err
		case errors.As(err, &ae):
			return err
		}
		// The stream broke without an answer to show (the server
		// restarting, say): reconnect after the last event seen.
		failures++
		if failures > streamRetries {
			return fmt.Errorf("following events: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// callerError marks an error returned by a follower's own function.
type callerError struct{ err error }

func (e callerError) Error() string { return e.err.Error() }
func (e callerError) Unwrap() error { return e.err }

// deploymentEndedError says a deployment ended rolled back or failed: the
// command exits with ExitFailed.
type deploymentEndedError struct{ d api.Deployment }

func (e *deploymentEndedError) Error() string {
	return fmt.Sprintf("deployment %s of %s %s: %s", e.d.ID, e.d.App, outcomeWords(e.d.Outcome), e.d.Reason)
}

func outcomeWords(outcome string) string {
	if outcome == "rolled_back" {
		return "rolled back"
	}
	return outcome
}

// watchDeployment shows a deployment's progress on out until it ends (or,
// with released, until green is live and only blue's retirement is left):
// a frame redrawn in place on a terminal, one line per event otherwise. It
// returns the deployment as it ended, or as it was when released.
func watchDeployment(ctx context.Context, c *api.Client, d api.Deployment, out io.Writer, tty, released bool) (api.Deployment, error) {
	steps := 0
	if st, err := c.Status(ctx, d.App, ""); err == nil && st.Progress != nil && st.Deployment != nil && st.Deployment.ID == d.ID {
		steps = st.Progress.Steps
	}
	p := newProgress(d, steps)
	loc := time.Local
	shown := 0
	draw := func() {
		lines := frame(p, loc)
		fmt.Fprint(out, redraw(shown, lines))
		shown = len(lines)
	}
	if tty {
		draw()
	}
	if !p.done() {
		err := followEvents(ctx, c, "", d.ID, 0, func(e api.Event) error {
			p.apply(e)
			if tty {
				draw()
			} else {
				fmt.Fprintln(out, plainLine(e, p.Phase, loc))
			}
			if p.done() || released && p.Phase == engine.PhaseRetiring {
				return errWatchDone
			}
			return nil
		})
		if ctx.Err() != nil {
			return d, fmt.Errorf("stopped watching; deployment %s goes on (see `bluegreen status %s`)", d.ID, d.App)
		}
		if !errors.Is(err, errWatchDone) {
			return d, err
		}
	}
	final, err := c.Deployment(ctx, d.ID)
	if err != nil {
		return d, fmt.Errorf("reading deployment %s: %w", d.ID, err)
	}
	if final.Outcome == "" && final.Phase == engine.PhaseRetiring {
		fmt.Fprintln(out, releasedLine(final))
		return final, nil
	}
	if !tty && final.Outcome == "succeeded" {
		// A failure's reason was printed as the rollback began, and the
		// command's error says it again: once more here would be a third.
		p.Outcome, p.Reason = final.Outcome, final.Reason
		fmt.Fprintln(out, endLine(p))
	}
	return final, nil
}

// releasedLine says that green is live and what is left for the deployment.
func releasedLine(d api.Deployment) string {
	when := "soon"
	if t, ok := d.Deadlines["keep_blue"]; ok {
		when = "at " + t.Local().Format("15:04:05")
	}
	return fmt.Sprintf("deployment %s released: revision %d is live; blue stays warm for an instant rollback (`bluegreen rollback %s`) and retires %s (--wait-retired waits for that)",
		d.ID, d.ToRevision, d.App, when)
}
