package api

import (
	"context"
	"net/http"
)

// RouterUpgrade is the answer of POST /api/v1/router/upgrade: the router
// process that took the listeners over, and the one that drains and exits.
type RouterUpgrade struct {
	Pid    int    `json:"pid"`
	OldPid int    `json:"old_pid"`
	Took   string `json:"took"` // from the start of the new process to its serving alone
}

func (s *Server) upgradeRouter(w http.ResponseWriter, r *http.Request) {
	if s.UpgradeRouter == nil {
		writeError(w, &Error{http.StatusNotFound, CodeNotFound, "this server runs no router of its own to upgrade"})
		return
	}
	rep, err := s.UpgradeRouter(r.Context())
	if err != nil {
		writeError(w, &Error{http.StatusInternalServerError, CodeInternal, "upgrading the router: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// UpgradeRouter has the server replace its router process by one of the
// server's binary, which takes the listeners over (admin token).
func (c *Client) UpgradeRouter(ctx context.Context) (RouterUpgrade, error) {
	var out RouterUpgrade
	err := c.doJSON(ctx, http.MethodPost, "/api/v1/router/upgrade", nil, &out)
	return out, err
}
