package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"bluegreen/internal/router"
)

// takeOver starts r on the listeners of the router running on cfg's admin
// socket, with that router's table, moves the admin socket to r, and tells
// the running router to drain and exit. Until the admin socket moves, an
// error leaves the running router serving as before.
func takeOver(ctx context.Context, r *router.Router, cfg *router.Config, log *slog.Logger) error {
	path, ok := strings.CutPrefix(cfg.Admin, "unix:")
	if !ok {
		return errors.New("--take-over: the admin address must be a unix: socket, which can pass the listening sockets")
	}
	prev, err := router.TakeOver(ctx, path, cfg.AdminToken)
	if err != nil {
		return err
	}
	if prev.Table.Admin != cfg.Admin {
		prev.Abandon()
		return fmt.Errorf("--take-over: the running router's admin address is %q, the file's %q", prev.Table.Admin, cfg.Admin)
	}
	log.Info("taking over", "from", prev.Pid, "listeners", prev.Listeners())
	r.Inherit(prev)
	// The running table, not the file's: a table pushed through the admin
	// API and not saved is what clients are served now.
	_, err = r.Apply(prev.Table)
	r.CloseUnused()
	if err != nil {
		prev.Abandon()
		return fmt.Errorf("--take-over: the running router's table: %w", err)
	}
	if _, err := r.ListenAdminReplacing(cfg.Admin); err != nil {
		prev.Abandon()
		return err
	}
	log.Info("admin API listening", "addr", path)
	if err := prev.Finish(r); err != nil {
		// This router serves all the same; the old one may serve beside it.
		log.Error("the old router did not confirm the hand-over", "pid", prev.Pid, "err", err)
		return nil
	}
	log.Info("took over", "from", prev.Pid)
	return nil
}
