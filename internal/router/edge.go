package router

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// edgeRoutes are what a plain listener named in some app's tls.http does
// besides routing: the apps whose requests it redirects to HTTPS, with the
// port of their HTTPS listener (":8443", or "" for 443).
type edgeRoutes struct {
	redirect map[*app]string
}

// edgeState holds the ACME HTTP-01 answers the control plane gave the
// router, and what was last said of each certificate.
type edgeState struct {
	mu         sync.Mutex
	challenges map[string]string // token → key authorization
	certErrs   map[string]string // listener+host → error last logged
}

const acmeChallengePath = "/.well-known/acme-challenge/"

// routeEdge puts app a on its tls.http listener, if it has one.
func (r *Router) routeEdge(tbl *table, ac *AppConfig, a *app, production string) {
	if ac.TLS == nil || ac.TLS.HTTP == "" {
		return
	}
	r.route(tbl, ac.TLS.HTTP, false, false, ac.Hosts, a)
	lr := tbl.listeners[ac.TLS.HTTP]
	if lr.edge == nil {
		lr.edge = &edgeRoutes{redirect: map[*app]string{}}
	}
	if ac.TLS.Redirect {
		port := ""
		if _, p, err := net.SplitHostPort(production); err == nil && p != "443" {
			port = ":" + p
		}
		lr.edge.redirect[a] = port
	}
}

// edge answers what a tls.http listener answers itself: ACME challenges,
// and redirects to HTTPS. It reports whether it answered.
func (h *handler) edge(ctx *fasthttp.RequestCtx, tbl *table, lr *listenerRoutes) bool {
	if token, ok := strings.CutPrefix(string(ctx.Path()), acmeChallengePath); ok {
		h.r.edge.mu.Lock()
		keyAuth, found := h.r.edge.challenges[token]
		h.r.edge.mu.Unlock()
		if !found {
			plainError(ctx, tbl, requestID(ctx.Request.Header.Peek(tbl.reqID)), http.StatusNotFound, "no ACME challenge is pending for this token")
			return true
		}
		ctx.Response.Header.SetContentType("text/plain")
		ctx.SetBodyString(keyAuth)
		return true
	}
	host, target, ok := routingTarget(ctx.Request.Header.Host(), ctx.Request.Header.RequestURI())
	if !ok {
		return false
	}
	a := lr.lookup(b2s(host), b2s(target))
	port, redirect := lr.edge.redirect[a]
	if a == nil || !redirect {
		return false
	}
	name := string(host)
	if hn, _, err := net.SplitHostPort(name); err == nil {
		name = hn
	}
	ctx.Response.Header.Set("Location", "https://"+name+port+string(target))
	if cl := ctx.Request.Header.ContentLength(); cl > 0 || cl == -1 {
		ctx.SetConnectionClose()
	}
	// 308 keeps the method and body of a POST, where 301 may not.
	ctx.SetStatusCode(http.StatusPermanentRedirect)
	return true
}

// SetChallenge makes the router answer GET /.well-known/acme-challenge/TOKEN
// with keyAuth on its tls.http listeners.
func (r *Router) SetChallenge(token, keyAuth string) {
	r.edge.mu.Lock()
	defer r.edge.mu.Unlock()
	if r.edge.challenges == nil {
		r.edge.challenges = map[string]string{}
	}
	r.edge.challenges[token] = keyAuth
}

// DeleteChallenge forgets a challenge once its order is done.
func (r *Router) DeleteChallenge(token string) {
	r.edge.mu.Lock()
	defer r.edge.mu.Unlock()
	delete(r.edge.challenges, token)
}

// CertStatus is how one host of a TLS listener is served.
type CertStatus struct {
	Listener string    `json:"listener"`
	App      string    `json:"app,omitempty"`
	Host     string    `json:"host"`
	File     string    `json:"file"`
	Names    []string  `json:"names,omitempty"`
	NotAfter time.Time `json:"not_after,omitzero"`
	Error    string    `json:"error,omitempty"`
}

// TLSStatus lists the certificate of every host of every TLS listener.
func (r *Router) TLSStatus() []CertStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []CertStatus
	for _, addr := range sortedKeys(r.listeners) {
		set := r.listeners[addr].certs.Load()
		if set == nil {
			continue
		}
		for _, e := range set.entries() {
			s := CertStatus{Listener: addr, App: e.app, Host: e.host, File: e.source}
			if e.err != nil {
				s.Error = e.err.Error()
			} else {
				s.Names, s.NotAfter = e.cert.Leaf.DNSNames, e.cert.Leaf.NotAfter
			}
			out = append(out, s)
		}
	}
	return out
}

// ReloadTLS reads every certificate of the running table again: files
// renewed in place (by the server's ACME client, or by hand) are served
// from the next handshake on.
func (r *Router) ReloadTLS() {
	r.mu.Lock()
	defer r.mu.Unlock()
	sets := r.table.Load().cfg.certSets(time.Now())
	for addr, l := range r.listeners {
		if s := sets[addr]; s != nil && l.tls {
			l.certs.Store(s)
		}
	}
	r.reportCerts(sets)
}

// reportCerts logs the certificates that became unusable, or usable again.
// The caller holds r.mu.
func (r *Router) reportCerts(sets map[string]*certSet) {
	r.edge.mu.Lock()
	defer r.edge.mu.Unlock()
	seen := map[string]string{}
	for _, addr := range sortedKeys(sets) {
		for _, e := range sets[addr].entries() {
			key := addr + " " + e.host
			if e.err != nil {
				seen[key] = e.err.Error()
				if r.edge.certErrs[key] != e.err.Error() {
					r.log.Error("certificate unusable; the host's TLS handshakes fail, other hosts are served", "listener", addr, "host", e.host, "err", e.err)
				}
			} else if _, was := r.edge.certErrs[key]; was {
				r.log.Info("certificate usable again", "listener", addr, "host", e.host, "not_after", e.cert.Leaf.NotAfter)
			}
		}
	}
	r.edge.certErrs = seen
}

// certReloadEvery is how often certificate files are read again, so that
// certificates renewed on disk are picked up without a push.
var certReloadEvery = time.Minute

// reloadCerts rereads the certificates until the router shuts down.
func (r *Router) reloadCerts() {
	tick := time.NewTicker(certReloadEvery)
	defer tick.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-tick.C:
			r.ReloadTLS()
		}
	}
}

// edgeAdmin adds the admin routes of TLS and ACME to mux.
func (r *Router) edgeAdmin(mux *http.ServeMux) {
	mux.HandleFunc("GET /tls", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"certificates": r.TLSStatus()})
	})
	mux.HandleFunc("POST /tls/reload", func(w http.ResponseWriter, _ *http.Request) {
		r.ReloadTLS()
		writeJSON(w, http.StatusOK, map[string]any{"certificates": r.TLSStatus()})
	})
	mux.HandleFunc("PUT /acme/challenges/{token}", func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(io.LimitReader(req.Body, 4<<10))
		token := req.PathValue("token")
		if err != nil || len(body) == 0 || !strings.HasPrefix(string(body), token+".") {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "the body must be the key authorization TOKEN.THUMBPRINT"})
			return
		}
		r.SetChallenge(token, string(bytes.TrimSpace(body)))
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	})
	mux.HandleFunc("DELETE /acme/challenges/{token}", func(w http.ResponseWriter, req *http.Request) {
		r.DeleteChallenge(req.PathValue("token"))
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	})
}
