package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"bluegreen/internal/notify"
	"bluegreen/internal/params"
	"bluegreen/internal/spec"
	"bluegreen/internal/store"
)

// NotificationsFile is the server's own list of notification destinations
// in the data directory, read at start when --notifications names none.
const NotificationsFile = "notifications.yaml"

// Notify configures the notifications the server sends.
type Notify struct {
	// File lists destinations that get every app's notifications (empty:
	// DATA/notifications.yaml, when it exists).
	File string
	// Allow lists the networks notifications may go to besides public
	// addresses (CIDR prefixes or addresses).
	Allow []string
	// Queue, MaxAge and RetryMax bound what waits for a receiver that is
	// down (the notify package's defaults when zero).
	Queue    int
	MaxAge   time.Duration
	RetryMax time.Duration
}

// startNotifier reads the server's destinations and starts following the
// log. It starts before the engine, so that nothing the engine records
// after a restart is missed.
func startNotifier(ctx context.Context, o Options, st *store.Store, ps *params.Store, log *slog.Logger) (*notify.Notifier, error) {
	policy, err := notify.ParseAllow(o.Notify.Allow)
	if err != nil {
		return nil, err
	}
	file := o.Notify.File
	if file == "" {
		file = filepath.Join(o.DataDir, NotificationsFile)
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			file = ""
		}
	}
	var defaults []spec.Notification
	if file != "" {
		raw, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("notifications: %w", err)
		}
		if defaults, err = spec.ParseNotifications(raw, file); err != nil {
			return nil, err
		}
		// A param that does not exist yet is no reason to refuse to
		// start: it can only be written through a running server.
		for i, d := range defaults {
			for _, name := range []string{d.SecretParam, d.URLParam} {
				if name == "" {
					continue
				}
				if _, err := ps.Get(ctx, name, 0); err != nil {
					log.Warn("a param of the server's notifications cannot be read; they are dropped until it can", "file", file, "notification", i, "param", name, "err", err)
				}
			}
		}
		log.Info("server notifications", "file", file, "destinations", len(defaults))
	}
	n, err := notify.New(notify.Options{Store: st, Params: ps, Defaults: defaults, Policy: policy,
		QueueLimit: o.Notify.Queue, MaxAge: o.Notify.MaxAge, RetryMax: o.Notify.RetryMax, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := n.Start(ctx); err != nil {
		return nil, err
	}
	return n, nil
}
