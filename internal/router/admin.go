package router

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// maxTableBytes bounds a PUT /routes body.
const maxTableBytes = 8 << 20

// RoutesView is the answer of GET /routes: the running table (without the admin
// token) and the state of each target.
type RoutesView struct {
	Generation uint64        `json:"generation"`
	Table      *Config       `json:"table"`
	Targets    []TargetState `json:"targets"`
}

// TargetState is one target's place in the table and its health.
type TargetState struct {
	App     string `json:"app"`
	Fleet   string `json:"fleet"`
	Address string `json:"address"`
	Healthy bool   `json:"healthy"`
	Suspect bool   `json:"suspect"`
	Fenced  bool   `json:"fenced"`
}

// Routes returns the running table and target health.
func (r *Router) Routes() RoutesView {
	tbl := r.table.Load()
	cfg := tbl.cfg.clone()
	cfg.AdminToken = ""
	v := RoutesView{Generation: tbl.gen, Table: cfg, Targets: []TargetState{}}
	now := nanotime()
	for _, name := range sortedKeys(tbl.apps) {
		for _, f := range tbl.apps[name].fleets {
			for i, t := range f.targets {
				v.Targets = append(v.Targets, TargetState{App: name, Fleet: f.name, Address: t.addr,
					Healthy: t.healthy.Load(), Suspect: t.healthy.Load() && !t.usable(now), Fenced: f.fenced || f.fencedT[i]})
			}
		}
	}
	return v
}

// AdminHandler serves the admin API: GET/PUT/PATCH /routes, GET /stats, POST /drain,
// GET /metrics and GET /healthz. Requests a web page sent from another origin
// are refused; every route needs the bearer token when the running table sets
// admin_token.
func (r *Router) AdminHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{r}, tlsCollector{r})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "generation": r.Generation()})
	})
	mux.HandleFunc("GET /routes", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, r.Routes())
	})
	mux.HandleFunc("PUT /routes", r.putRoutes)
	mux.HandleFunc("PATCH /routes", r.patchRoutes)
	mux.HandleFunc("GET /stats", r.getStats)
	mux.HandleFunc("POST /drain", r.postDrain)
	mux.HandleFunc("POST "+HandoverPath, r.postHandover)
	mux.HandleFunc("GET /version", r.getVersion)
	r.edgeAdmin(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	// Profiles of the running router, for operators chasing a slowdown.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return refuseBrowsers(r.requireToken(mux))
}

func (r *Router) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		want := r.table.Load().cfg.AdminToken
		if want != "" {
			got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="bluegreen router"`)
				writeJSON(w, http.StatusUnauthorized, apiError{"unauthorized", "this admin API needs the router's token: send Authorization: Bearer TOKEN"})
				return
			}
		}
		next.ServeHTTP(w, req)
	})
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"error"`
}

func (r *Router) putRoutes(w http.ResponseWriter, req *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxTableBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeJSON(w, http.StatusRequestEntityTooLarge, apiError{"too_large", fmt.Sprintf("routing table over %d bytes", maxTableBytes)})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"invalid_request", "reading the routing table: " + err.Error()})
		return
	}
	cfg, err := ParseJSON(data)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"invalid_table", err.Error()})
		return
	}
	// The admin listener and its token are the router's own; a table pushed
	// through that listener may restate them but not change them.
	cur := r.table.Load().cfg
	if cfg.Admin != "" && cfg.Admin != cur.Admin {
		writeJSON(w, http.StatusBadRequest, apiError{"invalid_table", "admin: the admin address cannot change through the admin API"})
		return
	}
	if cfg.AdminToken != "" && cfg.AdminToken != cur.AdminToken {
		writeJSON(w, http.StatusBadRequest, apiError{"invalid_table", "admin_token: the token cannot change through the admin API"})
		return
	}
	cfg.Admin, cfg.AdminToken = cur.Admin, cur.AdminToken
	gen, err := r.applyOwned(cfg)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"rejected", err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"generation": gen})
}

// patchRoutes puts or removes the apps the body names and leaves the rest
// of the running table as it is: a change of one app among a thousand
// costs that app's routes on the wire, not the whole table's.
func (r *Router) patchRoutes(w http.ResponseWriter, req *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxTableBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeJSON(w, http.StatusRequestEntityTooLarge, apiError{"too_large", fmt.Sprintf("routes patch over %d bytes", maxTableBytes)})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"invalid_request", "reading the routes patch: " + err.Error()})
		return
	}
	p, err := ParsePatchJSON(data)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"invalid_table", err.Error()})
		return
	}
	gen, err := r.ApplyPatch(p)
	var inv *InvalidTableError
	switch {
	case errors.As(err, &inv):
		writeJSON(w, http.StatusBadRequest, apiError{"invalid_table", err.Error()})
	case err != nil:
		writeJSON(w, http.StatusBadRequest, apiError{"rejected", err.Error()})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"generation": gen})
	}
}

func (r *Router) getStats(w http.ResponseWriter, req *http.Request) {
	var q StatsQuery
	params := req.URL.Query()
	// Parameters are strict: a misspelt one silently ignored would hand the
	// caller numbers for a window it did not ask for.
	for name, vals := range params {
		if name != "window" && name != "app" {
			writeJSON(w, http.StatusBadRequest, apiError{"invalid_request", fmt.Sprintf("unknown parameter %q (known: window, app)", name)})
			return
		}
		if len(vals) > 1 {
			writeJSON(w, http.StatusBadRequest, apiError{"invalid_request", fmt.Sprintf("%s: given %d times", name, len(vals))})
			return
		}
	}
	if params.Has("window") {
		d, err := ParseWindow(params.Get("window"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{"invalid_request", "window: " + err.Error()})
			return
		}
		q.Window = d
	}
	q.App = params.Get("app")
	s, err := r.StatsFor(q)
	switch {
	case errors.Is(err, ErrNotInTable):
		writeJSON(w, http.StatusNotFound, apiError{"not_found", err.Error()})
	case err != nil:
		writeJSON(w, http.StatusBadRequest, apiError{"invalid_request", err.Error()})
	default:
		writeJSON(w, http.StatusOK, s)
	}
}

func (r *Router) postDrain(w http.ResponseWriter, req *http.Request) {
	// The timeout must be given: a forgotten one would cut everything at once.
	var body struct {
		DrainRequest
		Timeout *Duration `json:"timeout"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"invalid_request", "drain request: " + err.Error()})
		return
	}
	if body.Timeout == nil {
		writeJSON(w, http.StatusBadRequest, apiError{"invalid_request", `drain request: "timeout" is required (for example "30s"; "0s" closes everything at once)`})
		return
	}
	dr := body.DrainRequest
	dr.Timeout = *body.Timeout
	rep, err := r.Drain(req.Context(), dr)
	switch {
	case errors.Is(err, ErrNotInTable):
		writeJSON(w, http.StatusNotFound, apiError{"not_found", err.Error()})
	case err != nil:
		writeJSON(w, http.StatusBadRequest, apiError{"drain_failed", err.Error()})
	default:
		writeJSON(w, http.StatusOK, rep)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// ListenAdmin serves the admin API on a loopback address or a unix socket
// ("unix:/path", created with mode 0600).
func (r *Router) ListenAdmin(addr string) (net.Addr, error) {
	if err := checkAdminAddr(addr); err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	var ln net.Listener
	var err error
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		// A socket left by a process that is gone would block the bind.
		if c, derr := net.DialTimeout("unix", path, time.Second); derr == nil {
			c.Close()
			return nil, fmt.Errorf("admin listener: %s is in use by a running process", path)
		}
		os.Remove(path)
		ln, err = net.Listen("unix", path)
		if err == nil {
			err = os.Chmod(path, 0o600)
		}
	} else {
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("admin listener %s: %w", addr, err)
	}
	return r.serveAdmin(ln, addr), nil
}

// serveAdmin serves the admin API on ln, opened for addr.
func (r *Router) serveAdmin(ln net.Listener, addr string) net.Addr {
	h := r.AdminHandler()
	if ln.Addr().Network() == "tcp" {
		h = loopbackHostOnly(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	r.mu.Lock()
	r.admin = srv
	r.ho.adminLn = ln
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("admin listener stopped", "addr", addr, "err", err)
		}
	}()
	return ln.Addr()
}
