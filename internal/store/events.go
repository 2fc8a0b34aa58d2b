package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// Event is one entry of the append-only log.
type Event struct {
	Seq          int64 // assigned by the store, increasing, never reused
	Time         time.Time
	App          string
	DeploymentID string
	Kind         string
	Message      string
	// Fields carry structured details; they are stored as JSON, so numbers
	// read back as float64. Values with a MarshalJSON of their own (such as
	// redacted secrets) are stored as that method writes them.
	Fields map[string]any
}

// EventFilter selects events for ListEvents. Zero fields do not filter.
type EventFilter struct {
	App          string
	DeploymentID string
	AfterSeq     int64 // only events with Seq > AfterSeq
	Limit        int   // at most this many, oldest first; 1000 when <= 0
}

const defaultEventLimit = 1000

// AppendEvent adds e to the log within the transaction, so an event and the
// state change it reports commit together. Seq and (when zero) Time are set.
func (tx *Tx) AppendEvent(ctx context.Context, e Event) (Event, error) {
	if e.Kind == "" {
		return Event{}, fmt.Errorf("event for app %q: kind is empty", e.App)
	}
	if e.Time.IsZero() {
		e.Time = tx.s.now()
	}
	e.Time = fromNanos(nanos(e.Time))
	fields := e.Fields
	if fields == nil {
		fields = map[string]any{}
	}
	fj, err := json.Marshal(fields)
	if err != nil {
		return Event{}, fmt.Errorf("event %s for app %q: encoding fields: %w", e.Kind, e.App, err)
	}
	err = tx.tx.QueryRowContext(ctx, `
		INSERT INTO events (time, app, deployment_id, kind, message, fields)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING seq`,
		nanos(e.Time), e.App, e.DeploymentID, e.Kind, e.Message, string(fj)).Scan(&e.Seq)
	if err != nil {
		return Event{}, fmt.Errorf("appending event %s for app %q: %w", e.Kind, e.App, err)
	}
	// Hand back what a reader will see, not the caller's typed values.
	e.Fields = nil
	if err := json.Unmarshal(fj, &e.Fields); err != nil {
		return Event{}, fmt.Errorf("event %d: decoding fields: %w", e.Seq, err)
	}
	tx.appended = true
	return e, nil
}

// AppendEvent adds one event in its own transaction.
func (s *Store) AppendEvent(ctx context.Context, e Event) (out Event, err error) {
	err = s.Update(ctx, func(tx *Tx) error {
		out, err = tx.AppendEvent(ctx, e)
		return err
	})
	return out, err
}

// ListEvents returns events matching f, oldest first.
func (s *Store) ListEvents(ctx context.Context, f EventFilter) ([]Event, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultEventLimit
	}
	query, args := eventsQuery(f, limit)
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("listing events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var t int64
		var fields string
		if err := rows.Scan(&e.Seq, &t, &e.App, &e.DeploymentID, &e.Kind, &e.Message, &fields); err != nil {
			return nil, fmt.Errorf("listing events: %w", err)
		}
		e.Time = fromNanos(t)
		if err := json.Unmarshal([]byte(fields), &e.Fields); err != nil {
			return nil, fmt.Errorf("event %d: decoding fields: %w", e.Seq, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing events: %w", err)
	}
	return out, nil
}

// eventsQuery is ListEvents' statement: a plain WHERE per filter, so that
// SQLite reads an app's or a deployment's events by their index, not every
// event after AfterSeq.
func eventsQuery(f EventFilter, limit int) (string, []any) {
	where, args := `seq > ?`, []any{f.AfterSeq}
	switch {
	case f.DeploymentID != "":
		where, args = `deployment_id = ? AND seq > ?`, []any{f.DeploymentID, f.AfterSeq}
		if f.App != "" {
			where, args = where+` AND app = ?`, append(args, f.App)
		}
	case f.App != "":
		where, args = `app = ? AND seq > ?`, []any{f.App, f.AfterSeq}
	}
	return `SELECT seq, time, app, deployment_id, kind, message, fields FROM events WHERE ` + where +
		` ORDER BY seq LIMIT ?`, append(args, limit)
}

// EventsAppended returns a channel closed at the next commit that appends
// events. Take it before reading, so nothing committed in between is missed:
//
//	ch := s.EventsAppended()
//	evs, _ := s.ListEvents(ctx, f)
//	if len(evs) == 0 { select { case <-ch: case <-ctx.Done(): } }
func (s *Store) EventsAppended() <-chan struct{} { return s.events.wait() }

// WaitEvents returns the events matching f, blocking until there is at
// least one or ctx ends. A streaming endpoint calls it in a loop with
// AfterSeq set to the last Seq it sent.
func (s *Store) WaitEvents(ctx context.Context, f EventFilter) ([]Event, error) {
	for {
		ch := s.EventsAppended()
		evs, err := s.ListEvents(ctx, f)
		if err != nil || len(evs) > 0 {
			return evs, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// notifier wakes every waiter by closing the current channel and starting a
// new one; waiters never miss a wake-up and nothing blocks the writer.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func newNotifier() *notifier { return &notifier{ch: make(chan struct{})} }

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

func (n *notifier) wake() {
	n.mu.Lock()
	defer n.mu.Unlock()
	close(n.ch)
	n.ch = make(chan struct{})
}
