package server

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"

	"bluegreen/internal/api"
	"bluegreen/internal/certs"
	"bluegreen/internal/router"
	"bluegreen/internal/routerproc"
	"bluegreen/internal/store"
)

// acmeDir holds the ACME accounts and certificates.
const acmeDir = "acme"

// ACME are the server's defaults for apps whose router.tls asks for acme.
type ACME struct {
	// Directory is the ACME directory URL (Let's Encrypt's when empty).
	Directory string
	// Email is the account's contact when the spec gives none.
	Email string
	// CARoots is a PEM file of extra roots trusted when talking to Directory.
	CARoots string
}

// routerOfSupervisor is the router the certificate manager talks to: the
// supervisor's client of the moment, which changes when the router restarts.
type routerOfSupervisor struct{ sup *routerproc.Supervisor }

func (r routerOfSupervisor) Routes(ctx context.Context) (router.Config, uint64, error) {
	return r.sup.Client().Routes(ctx)
}
func (r routerOfSupervisor) SetChallenge(ctx context.Context, token, keyAuth string) error {
	return r.sup.Client().SetChallenge(ctx, token, keyAuth)
}
func (r routerOfSupervisor) DeleteChallenge(ctx context.Context, token string) error {
	return r.sup.Client().DeleteChallenge(ctx, token)
}
func (r routerOfSupervisor) ReloadTLS(ctx context.Context) error {
	return r.sup.Client().ReloadTLS(ctx)
}

// startCerts runs the certificate manager until ctx ends; the returned
// function waits for it.
func startCerts(ctx context.Context, o Options, sup *routerproc.Supervisor, st *store.Store, log *slog.Logger) (*certs.Manager, func(), error) {
	m, err := certs.New(certs.Options{
		Dir: filepath.Join(o.DataDir, acmeDir), Directory: o.ACME.Directory, Email: o.ACME.Email, CARoots: o.ACME.CARoots,
		Router: routerOfSupervisor{sup}, Logger: log, Poll: o.ACMEPoll,
		Events: func(ctx context.Context, e certs.Event) {
			if _, err := st.AppendEvent(ctx, store.Event{App: e.App, Kind: e.Kind, Message: e.Message, Fields: e.Fields}); err != nil {
				log.Warn("recording a certificate event", "err", err)
			}
		},
	})
	if err != nil {
		return nil, nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); m.Run(cctx) }()
	return m, func() { cancel(); <-done }, nil
}

// certificateStatus puts together what the manager says of an app's ACME
// hosts and what the router says of its certificate files.
func certificateStatus(m *certs.Manager, sup *routerproc.Supervisor) func(ctx context.Context, app string) []api.CertificateStatus {
	return func(ctx context.Context, app string) []api.CertificateStatus {
		var out []api.CertificateStatus
		acme := map[string]bool{}
		for _, h := range m.Status(app) {
			acme[h.Host] = true
			out = append(out, api.CertificateStatus{Host: h.Host, Source: "acme", State: h.State, NotAfter: h.NotAfter,
				RenewAt: h.RenewAt, Error: h.Error, NextTry: h.NextTry})
		}
		tls, err := sup.Client().TLS(ctx)
		if err != nil {
			return out
		}
		seen := map[string]bool{}
		for _, c := range tls {
			if c.App != app && !strings.HasPrefix(c.App, app+".") || acme[c.Host] || seen[c.Host] {
				continue
			}
			seen[c.Host] = true
			s := api.CertificateStatus{Host: c.Host, Source: "file", State: "valid", NotAfter: c.NotAfter, Error: c.Error}
			if c.Error != "" {
				s.State = "unusable"
			}
			out = append(out, s)
		}
		return out
	}
}
