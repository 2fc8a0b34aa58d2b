package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"bluegreen/internal/auth"
	"bluegreen/internal/platform"
	"bluegreen/internal/store"
)

// DefaultHeartbeat is how often an idle event stream sends a comment, so
// that proxies and clients see the connection is alive.
const DefaultHeartbeat = 15 * time.Second

// streamWriteStall bounds one write of a stream (an event, a heartbeat, a
// chunk of a log): a stream may last for hours, but a client that stops
// reading it is dropped. The server's write deadline for an answer is
// moved along before each write.
const streamWriteStall = time.Minute

// extendWrite moves the connection's write deadline for the next write.
func extendWrite(rc *http.ResponseController) {
	_ = rc.SetWriteDeadline(time.Now().Add(streamWriteStall))
}

// wantsEventStream says whether the client asked for server-sent events.
func wantsEventStream(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// streamContext is the request's context, also ended when the server
// stops its streams (at shutdown), so that a shutdown need not wait for
// clients that follow events or logs.
func (s *Server) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	if s.Stop != nil {
		go func() {
			select {
			case <-s.Stop:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	return ctx, cancel
}

// streamEvents answers GET /api/v1/events as server-sent events: every
// event of the filter after its sequence number (or after Last-Event-ID,
// when the client reconnects), then each new one as it is appended, as
// "id: SEQ", "event: KIND" and "data: JSON"; a comment line every
// heartbeat while nothing happens. It ends when the client leaves.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request, f store.EventFilter) {
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, &Error{http.StatusBadRequest, CodeInvalid, fmt.Sprintf("header Last-Event-ID %q: want a sequence number", v)})
			return
		}
		f.AfterSeq = max(f.AfterSeq, n)
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
	beat := s.Heartbeat
	if beat <= 0 {
		beat = DefaultHeartbeat
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	extendWrite(rc)
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, ": events\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	for {
		wctx, wcancel := context.WithTimeout(ctx, beat)
		evs, err := s.Store.WaitEvents(wctx, f)
		wcancel()
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, context.DeadlineExceeded):
			extendWrite(rc)
			if _, err := io.WriteString(w, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
				return
			}
			continue
		case err != nil:
			s.logError("streaming events", "err", err)
			return
		}
		extendWrite(rc)
		for _, e := range evs {
			data, err := json.Marshal(eventOf(e, callerRole(r.Context())))
			if err != nil {
				s.logError("encoding an event", "seq", e.Seq, "err", err)
				return
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Kind, data); err != nil {
				return
			}
			f.AfterSeq = e.Seq
		}
		if rc.Flush() != nil {
			return
		}
	}
}

func (s *Server) logError(msg string, args ...any) {
	if s.Logger != nil {
		s.Logger.Error(msg, args...)
	}
}

// eventOf is an event as a caller of role may see it: a hook's output
// (with known secrets already hidden when it was recorded) goes to deployers
// and admins, who can deploy hooks and read secure params anyway; a viewer
// sees that the hook ran and how it ended, and "output_hidden": true.
func eventOf(e store.Event, role auth.Role) Event {
	fields := e.Fields
	if _, ok := fields["output"]; ok && strings.HasPrefix(e.Kind, "hook.") && !role.Allows(auth.Deployer) {
		fields = maps.Clone(fields)
		delete(fields, "output")
		fields["output_hidden"] = true
	}
	return Event{Seq: e.Seq, Time: e.Time, App: e.App, DeploymentID: e.DeploymentID, Kind: e.Kind, Message: e.Message, Fields: fields}
}

// followLogs streams an instance's output as it is written, flushed per
// chunk, until the client leaves or the instance is gone.
func (s *Server) followLogs(r *http.Request, id string, tail int) (io.ReadCloser, error) {
	ctx, cancel := s.streamContext(r)
	rc, err := s.Platform.Logs(ctx, id, platform.LogOptions{Tail: tail, Follow: true})
	if err != nil {
		cancel()
		return nil, err
	}
	return &cancelReader{ReadCloser: rc, cancel: cancel}, nil
}

type cancelReader struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (r *cancelReader) Close() error {
	r.cancel()
	return r.ReadCloser.Close()
}

// copyFlushing copies src to w, flushing after every read, so a follower
// sees each line as it comes.
func copyFlushing(w http.ResponseWriter, src io.Reader) {
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			extendWrite(rc)
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// ErrStreamEnded is returned by StreamEvents when the server closed the
// stream (it stopped, say); the caller may reconnect after the last event.
var ErrStreamEnded = errors.New("the server ended the event stream")

// StreamEvents follows events of an app or a deployment (empty: all) after
// a sequence number as server-sent events, calling fn for each in order.
// It returns fn's error when fn fails, ctx's when ctx ends, and
// ErrStreamEnded when the server closes the stream.
func (c *Client) StreamEvents(ctx context.Context, app, deployment string, after int64, fn func(Event) error) error {
	q := url.Values{}
	if app != "" {
		q.Set("app", app)
	}
	if deployment != "" {
		q.Set("deployment", deployment)
	}
	q.Set("after", strconv.FormatInt(after, 10))
	resp, err := c.get(ctx, "/api/v1/events?"+q.Encode(), "text/event-stream")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data.Len() == 0 {
				continue
			}
			var e Event
			if err := json.Unmarshal([]byte(data.String()), &e); err != nil {
				return fmt.Errorf("event stream: decoding an event: %w", err)
			}
			data.Reset()
			if err := fn(e); err != nil {
				return err
			}
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
		// id, event and comment lines: the data carries the same.
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("event stream: %w", err)
	}
	return ErrStreamEnded
}

// FollowLogs returns an instance's output: the last tail lines (all kept
// when 0), then, with follow, what it writes until ctx ends or the instance
// is gone. The caller closes it.
func (c *Client) FollowLogs(ctx context.Context, app, id string, tail int, follow bool) (io.ReadCloser, error) {
	path := fmt.Sprintf("/api/v1/apps/%s/instances/%s/logs?tail=%d", url.PathEscape(app), url.PathEscape(id), tail)
	if follow {
		path += "&follow=1"
	}
	resp, err := c.get(ctx, path, "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// get sends a GET and returns a 2xx answer for the caller to read; other
// answers become an *Error.
func (c *Client) get(ctx context.Context, path, accept string) (*http.Response, error) {
	return c.send(ctx, http.MethodGet, path, nil, "Accept", accept)
}
