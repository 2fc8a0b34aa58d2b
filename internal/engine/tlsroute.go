package engine

import (
	"reflect"

	"bluegreen/internal/router"
	"bluegreen/internal/spec"
)

// routeTLS is the router's view of a spec's router.tls: the files as
// given, or, for acme, the directory where the server's ACME client keeps
// a certificate per host. What acme leaves out is the server's setting,
// filled in by that client, not here, so that changing the server's
// defaults does not change the routes of running revisions.
func (e *Engine) routeTLS(t *spec.TLS) *router.AppTLS {
	if t == nil {
		return nil
	}
	out := &router.AppTLS{CertFile: t.CertFile, KeyFile: t.KeyFile, HTTP: t.HTTP, Redirect: t.Redirect}
	if t.ACME != nil {
		out.CertDir = e.opts.CertDir
		out.ACME = &router.ACMESettings{Email: t.ACME.Email, Directory: t.ACME.Directory, CARoots: t.ACME.CARoots}
	}
	return out
}

// setTestTLS gives cfg's test listener the test spec's TLS when it is not
// the front's: a candidate that adds HTTPS (or drops it) is tested as it
// will serve, on a test listener that does not have to change when it
// becomes live.
func setTestTLS(cfg *router.AppConfig, t *router.AppTLS) {
	if reflect.DeepEqual(t, cfg.TLS) {
		return
	}
	if t == nil {
		cfg.TestListenerPlain = true
		return
	}
	cfg.TestListenerTLS = t
}
