package routerproc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"bluegreen/internal/router"
)

// pushed is the table the router last took from this supervisor, as it
// was validated, with each app's JSON: a change of a few apps is sent as
// a patch of those apps, and the route file is put together from the
// encodings without encoding the other apps again.
type pushed struct {
	cfg  *router.Config
	top  []byte            // the settings: the JSON object's start, up to "apps"
	apps map[string][]byte // each app's JSON
	raw  []byte            // instead of the above: a route file as it was read
}

// Update makes next the router's table, like Apply, when only the router
// apps named in changed differ from the table last pushed: those are sent
// with PATCH /routes (an app missing from next is removed), and the others
// are not encoded, sent or parsed again. The router checks the table they
// make with the running one whole, as it would a whole table. The first
// push of a supervisor, a change of the table's settings, a router that
// has no PATCH /routes, and any push after one whose outcome is unknown go
// as a whole table instead. next is not changed.
func (s *Supervisor) Update(ctx context.Context, next router.Config, changed []string) (uint64, error) {
	top, err := s.settings(&next)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	base := s.last
	if base == nil || s.noPatch || !bytes.Equal(top, base.top) {
		return s.applyLocked(ctx, &next)
	}
	// Validation fills defaults in: on copies of the changed apps only.
	patch := map[string]*router.AppConfig{}
	for _, name := range changed {
		a, err := cloneApp(next.Apps[name])
		if err != nil {
			return 0, err
		}
		patch[name] = a
	}
	tbl := *base.cfg
	tbl.Apps = maps.Clone(base.cfg.Apps)
	for name, a := range patch {
		if a == nil {
			delete(tbl.Apps, name)
		} else {
			tbl.Apps[name] = a
		}
	}
	if err := tbl.ValidateAgainst(base.cfg); err != nil {
		return 0, Refused(err.Error())
	}
	apps := maps.Clone(base.apps)
	var body bytes.Buffer
	body.WriteString(`{"apps":{`)
	for i, name := range slices.Sorted(maps.Keys(patch)) {
		if i > 0 {
			body.WriteByte(',')
		}
		writeKey(&body, name)
		if patch[name] == nil {
			delete(apps, name)
			body.WriteString("null")
			continue
		}
		js, err := json.Marshal(patch[name])
		if err != nil {
			return 0, fmt.Errorf("encoding the routes of %s: %w", name, err)
		}
		apps[name] = js
		body.Write(js)
	}
	body.WriteString("}}")
	now := &pushed{cfg: &tbl, top: base.top, apps: apps}

	if err := writeFileAtomic(s.routes, routeFileOf(now), 0o600); err != nil {
		return 0, fmt.Errorf("saving the routing table: %w", err)
	}
	gen, err := s.client.patchRoutesJSON(ctx, body.Bytes())
	var apiErr *APIError
	if errors.As(err, &apiErr) && (apiErr.Status == http.StatusMethodNotAllowed || apiErr.Status == http.StatusNotFound) {
		// A router adopted from an older server takes whole tables only.
		s.noPatch = true
		s.log.Info("the router takes no patches; pushing whole tables", "err", err)
		return s.applyLocked(ctx, &next)
	}
	return s.settle(gen, err, base, now)
}

// settle ends a push: a table the router took becomes the last pushed; one
// it refused is taken out of the route file again (the running table
// stays, and a restart must not come back with a table the router
// refused); after a push whose outcome is unknown, the new file stays (it
// is what the server meant, and what a restarted router should run) and
// the next push goes whole. The caller holds s.mu.
func (s *Supervisor) settle(gen uint64, err error, prev, now *pushed) (uint64, error) {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		if prev != nil {
			if rerr := writeFileAtomic(s.routes, routeFileOf(prev), 0o600); rerr != nil {
				s.log.Error("restoring the route file after a refused table", "file", s.routes, "err", rerr)
			}
		}
		if apiErr.Status == http.StatusBadRequest && (apiErr.Code == "invalid_table" || apiErr.Code == "rejected") {
			return 0, Refused(apiErr.Message)
		}
		s.last = nil
		return 0, fmt.Errorf("pushing the routing table: %w", err)
	}
	if err != nil {
		s.last = nil
		return 0, fmt.Errorf("pushing the routing table: %w", err)
	}
	s.last = now
	return gen, nil
}

// settings checks a table's top-level settings as Apply does, and returns
// them encoded, the admin address filled in, to tell whether they changed.
func (s *Supervisor) settings(cfg *router.Config) ([]byte, error) {
	if cfg.Admin != "" && cfg.Admin != s.admin {
		return nil, fmt.Errorf("routing table: admin is %q, but this router's admin API is %s", cfg.Admin, s.admin)
	}
	if cfg.AdminToken != "" {
		return nil, errors.New("routing table: admin_token must be empty: the router's admin API is a socket only its owner can open")
	}
	top := *cfg
	top.Admin, top.Apps = s.admin, nil
	if top.RequestIDHeader == "" {
		top.RequestIDHeader = router.DefaultRequestIDHeader
	}
	js, err := json.Marshal(&top)
	if err != nil {
		return nil, fmt.Errorf("encoding the routing table: %w", err)
	}
	// The apps come last; tableJSON writes them after the settings.
	js, ok := bytes.CutSuffix(js, []byte(`,"apps":null}`))
	if !ok {
		return nil, fmt.Errorf("encoding the routing table: unexpected settings %s", js)
	}
	return js, nil
}

// encodePushed encodes a validated table app by app.
func encodePushed(tbl *router.Config, top []byte) (*pushed, error) {
	p := &pushed{cfg: tbl, top: top, apps: make(map[string][]byte, len(tbl.Apps))}
	for name, a := range tbl.Apps {
		js, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("encoding the routes of %s: %w", name, err)
		}
		p.apps[name] = js
	}
	return p, nil
}

// tableJSON is the whole table in JSON, one app a line, put together from
// the encodings.
func tableJSON(p *pushed) []byte {
	var buf bytes.Buffer
	n := len(p.top) + 16
	for name, js := range p.apps {
		n += len(name) + len(js) + 8
	}
	buf.Grow(n)
	// p.top is the object's start, every setting but the apps.
	buf.Write(p.top)
	buf.WriteString(`,"apps":{`)
	for i, name := range slices.Sorted(maps.Keys(p.apps)) {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString("\n")
		writeKey(&buf, name)
		buf.Write(p.apps[name])
	}
	buf.WriteString("\n}}\n")
	return buf.Bytes()
}

// routeFileOf is the route file of a table pushed.
func routeFileOf(p *pushed) []byte {
	if p.raw != nil {
		return p.raw
	}
	return append([]byte(routeFileHeader), tableJSON(p)...)
}

func writeKey(buf *bytes.Buffer, name string) {
	k, _ := json.Marshal(name)
	buf.Write(k)
	buf.WriteByte(':')
}

// cloneApp deep-copies an app's routes (nil for nil).
func cloneApp(a *router.AppConfig) (*router.AppConfig, error) {
	if a == nil {
		return nil, nil
	}
	b, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encoding the routes of an app: %w", err)
	}
	var out router.AppConfig
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("copying the routes of an app: %w", err)
	}
	return &out, nil
}
