package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"bluegreen/internal/store"
)

// send delivers one destination's queue, oldest first, until the notifier
// stops. A failed attempt is tried again after a backoff; the queue keeps
// filling meanwhile, within its bound.
func (n *Notifier) send(q *queue) {
	defer n.wg.Done()
	ctx := n.ctx
	var lastErr error
	for ctx.Err() == nil {
		n.mu.Lock()
		why := fmt.Sprintf("not delivered within %s of its event (--notify-max-age)", n.o.MaxAge)
		if lastErr != nil {
			why += "; the last attempt: " + lastErr.Error()
		}
		q.dropStale(n.o.Now().Add(-n.o.MaxAge), why)
		drops, dropWhy := q.takeDrops()
		var it item
		busy := len(q.items) > 0
		if busy {
			it, q.sending = q.items[0], true
		}
		n.mu.Unlock()
		if drops != nil {
			n.reportDrops(ctx, q, drops, dropWhy)
			n.persist(ctx, false)
		}
		if !busy {
			select {
			case <-q.wake:
			case <-ctx.Done():
			}
			continue
		}
		err := n.deliver(ctx, it)
		if ctx.Err() != nil {
			return // not delivered: sent again after the next start
		}
		var perm *permanentError
		n.mu.Lock()
		q.sending = false
		failures, waiting := q.attempt, len(q.items)
		switch {
		case err == nil:
			q.done()
			q.failing, q.attempt = false, 0
		case errors.As(err, &perm):
			// Trying again cannot help: it is dropped now, and said so.
			q.drop(0, perm.Error())
		default:
			q.failing = true
			q.attempt++
		}
		n.mu.Unlock()
		switch {
		case err == nil:
			n.persist(ctx, false)
			if failures > 0 {
				n.log.Info("notifications are delivered again", "destination", q.label, "failed_attempts", failures)
				n.record(ctx, it.payload, "notification.recovered", fmt.Sprintf("notifications to %s are delivered again, after %d failed attempts", q.label, failures),
					map[string]any{"destination": q.label, "failed_attempts": failures})
			}
			lastErr = nil
		case perm != nil:
			lastErr = nil
		default:
			lastErr = err
			if failures == 0 {
				n.log.Warn("a notification could not be delivered; trying again with backoff", "destination", q.label, "event", it.payload.Event, "err", err)
				n.record(ctx, it.payload, "notification.failing",
					fmt.Sprintf("notifications to %s fail: %v; trying again with backoff (%d waiting, at most %d, each for up to %s)", q.label, err, waiting, n.o.QueueLimit, n.o.MaxAge),
					map[string]any{"destination": q.label, "error": err.Error(), "waiting": waiting})
			} else {
				n.log.Debug("a notification could not be delivered", "destination", q.label, "attempt", failures+1, "err", err)
			}
			wait(ctx, backoff(failures+1, n.o.RetryBase, n.o.RetryMax, jitter()))
		}
	}
}

// permanentError is a failure that no retry can mend: the server's
// policy refuses the address, the spec's param is gone.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// deliver makes one attempt: a 2xx answer is a delivery, anything else a
// failure.
func (n *Notifier) deliver(ctx context.Context, it item) error {
	d := it.dest
	target, err := n.url(ctx, d)
	if err != nil {
		return &permanentError{err}
	}
	body, err := it.payload.Body(d.n.Format)
	if err != nil {
		return &permanentError{err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return &permanentError{fmt.Errorf("the URL: %v", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "bluegreen-notify")
	req.Header.Set(HeaderEvent, it.payload.Event)
	req.Header.Set(HeaderDelivery, fmt.Sprintf("%s-%d-%s", d.key, it.payload.Seq, it.payload.Event))
	ts := n.o.Now().Unix()
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	if d.n.SecretParam != "" {
		secret, err := n.param(ctx, d, d.n.SecretParam)
		if err != nil {
			return &permanentError{fmt.Errorf("secret_param: %v", err)}
		}
		req.Header.Set(HeaderSignature, Sign([]byte(secret), ts, body))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		// Said without the URL, which may hold a secret (a Slack path).
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		var refused *RefusedError
		if errors.As(err, &refused) {
			return &permanentError{refused}
		}
		return err
	}
	defer resp.Body.Close()
	// Read a little, so the connection can be used again; what the
	// receiver says is never kept or shown.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		msg := "answered " + resp.Status
		if resp.StatusCode/100 == 3 {
			msg += " (redirects are not followed)"
		}
		return errors.New(msg)
	}
	return nil
}

// url is where d's notifications go: its url, or the value of its
// url_param.
func (n *Notifier) url(ctx context.Context, d destination) (string, error) {
	raw := d.n.URL
	if d.n.URLParam != "" {
		v, err := n.param(ctx, d, d.n.URLParam)
		if err != nil {
			return "", fmt.Errorf("url_param: %v", err)
		}
		raw = strings.TrimSpace(v)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("the URL is not an http:// or https:// URL")
	}
	return raw, nil
}

// param reads a param of d: at the version its revision pinned, or the
// latest for the server's destinations.
func (n *Notifier) param(ctx context.Context, d destination, name string) (string, error) {
	version, ok := d.pins[name]
	if d.pins != nil && !ok {
		return "", fmt.Errorf("%s is not pinned by revision %d", name, d.revision)
	}
	p, err := n.o.Params.Get(ctx, name, version)
	if err != nil {
		return "", fmt.Errorf("reading %s: %v", name, err)
	}
	return p.Value.Reveal(), nil
}

// label names a destination in events and logs without what may be
// secret in it: the URL's path (a Slack webhook's token) is left out.
func (d destination) label() string {
	where := "the server's notifications"
	if d.scope != "" {
		where = "notifications"
	}
	where = fmt.Sprintf("%s[%d]", where, d.index)
	if d.n.URLParam != "" {
		return fmt.Sprintf("the URL in %s (%s)", d.n.URLParam, where)
	}
	u, err := url.Parse(d.n.URL)
	if err != nil {
		return where
	}
	s := u.Scheme + "://" + u.Host
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		s += "/…"
	}
	return fmt.Sprintf("%s (%s)", s, where)
}

// reportDrops records what a queue dropped: an event per app and a log
// line.
func (n *Notifier) reportDrops(ctx context.Context, q *queue, drops map[string]int, why string) {
	for app, count := range drops {
		n.log.Warn("notifications dropped", "destination", q.label, "app", app, "count", count, "reason", why)
		what := "notification"
		if count > 1 {
			what = "notifications"
		}
		n.record(ctx, Payload{App: app}, "notification.dropped", fmt.Sprintf("%d %s to %s dropped: %s", count, what, q.label, why),
			map[string]any{"destination": q.label, "count": count, "reason": why})
	}
}

// record appends an event about notifications to the log, under the app
// (and deployment) they concern.
func (n *Notifier) record(ctx context.Context, about Payload, kind, message string, fields map[string]any) {
	if _, err := n.o.Store.AppendEvent(ctx, store.Event{App: about.App, DeploymentID: about.DeploymentID, Kind: kind, Message: message, Fields: fields}); err != nil && ctx.Err() == nil {
		n.log.Error("recording an event about notifications", "kind", kind, "err", err)
	}
}
