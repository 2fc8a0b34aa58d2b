package server

import (
	"context"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/routerproc"
)

// upgradeRouter answers POST /api/v1/router/upgrade: the router process is
// replaced by one of the server's binary, which takes its listeners over.
func upgradeRouter(sup *routerproc.Supervisor) func(context.Context) (api.RouterUpgrade, error) {
	return func(ctx context.Context) (api.RouterUpgrade, error) {
		rep, err := sup.Upgrade(ctx)
		if err != nil {
			return api.RouterUpgrade{}, err
		}
		return api.RouterUpgrade{Pid: rep.Pid, OldPid: rep.OldPid, Took: rep.Took.Round(time.Millisecond).String()}, nil
	}
}
