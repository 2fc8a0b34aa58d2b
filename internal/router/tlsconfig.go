package router

import (
	"sort"
	"strings"
)

// AppTLS terminates HTTPS for one app. Its certificate comes from a pair of
// PEM files, or from a directory holding one certificate per host (the one
// the server's ACME client keeps). A certificate that cannot be used costs
// only the hosts it was meant for: the table is applied all the same, and
// every other host keeps its own.
type AppTLS struct {
	// CertFile and KeyFile are a certificate chain and its private key in PEM.
	CertFile string `json:"cert_file,omitempty" yaml:"cert_file"`
	KeyFile  string `json:"key_file,omitempty" yaml:"key_file"`
	// CertDir holds HOST.crt and HOST.key for each of the app's hosts.
	CertDir string `json:"cert_dir,omitempty" yaml:"cert_dir"`
	// HTTP is a plain-HTTP listener for the app's hosts. It answers ACME
	// HTTP-01 challenges and, with Redirect, sends every other request to
	// HTTPS; without Redirect it serves the app as the production listener does.
	HTTP     string `json:"http,omitempty" yaml:"http"`
	Redirect bool   `json:"redirect,omitempty" yaml:"redirect"`
	// ACME says how the control plane obtains the certificates of CertDir;
	// the router only carries it.
	ACME *ACMESettings `json:"acme,omitempty" yaml:"acme"`
}

// ACMESettings are an app's certificate authority settings.
type ACMESettings struct {
	// Email is the account's contact (optional).
	Email string `json:"email,omitempty" yaml:"email"`
	// Directory is the ACME directory URL.
	Directory string `json:"directory,omitempty" yaml:"directory"`
	// CARoots is a PEM file of extra roots trusted when talking to Directory.
	CARoots string `json:"ca_roots,omitempty" yaml:"ca_roots"`
}

// testTLS is the TLS of the app's test listener.
func (a *AppConfig) testTLS() *AppTLS {
	switch {
	case a.TestListenerTLS != nil:
		return a.TestListenerTLS
	case a.TestListenerPlain:
		return nil
	}
	return a.TLS
}

// tlsListeners lists the listeners that speak TLS: those with a listener
// certificate, and those of apps with TLS of their own.
func (c *Config) tlsListeners() map[string]bool {
	out := map[string]bool{}
	for _, a := range c.Apps {
		if a == nil {
			continue
		}
		l := c.listenersOf(a)
		if l.production != "" {
			out[l.production] = out[l.production] || l.productionTLS != nil || a.TLS != nil
		}
		if l.test != "" {
			out[l.test] = out[l.test] || l.testTLS != nil || a.testTLS() != nil
		}
	}
	return out
}

// checkAppTLS checks the apps' TLS sections and that every listener is
// either TLS for all its apps or plain for all.
func (c *Config) checkAppTLS(p *problems) {
	tlsOn := c.tlsListeners()
	for _, name := range sortedKeys(c.Apps) {
		a := c.Apps[name]
		if a == nil {
			continue
		}
		at := "apps." + name
		l := c.listenersOf(a)
		for _, lt := range []struct {
			kind, addr string
			files      *TLSFiles
			tls        *AppTLS
		}{{"production", l.production, l.productionTLS, a.TLS}, {"test", l.test, l.testTLS, a.testTLS()}} {
			if lt.addr != "" && tlsOn[lt.addr] && lt.tls == nil && lt.files == nil {
				p.add("%s: the %s listener %s serves other apps over HTTPS, and this app has no certificate (give it tls, or another listener)", at, lt.kind, lt.addr)
			}
		}
		if a.TestListenerTLS != nil && a.TestListenerPlain {
			p.add("%s: test_listener_tls and test_listener_plain contradict each other", at)
		}
		if a.TestListenerTLS != nil {
			c.checkOneTLS(p, a, at+".test_listener_tls", a.TestListenerTLS, tlsOn)
		}
		if a.TLS != nil {
			c.checkOneTLS(p, a, at+".tls", a.TLS, tlsOn)
		}
	}
	c.checkEdgeHosts(p)
}

// checkOneTLS checks one TLS section of app a.
func (c *Config) checkOneTLS(p *problems, a *AppConfig, at string, t *AppTLS, tlsOn map[string]bool) {
	files := t.CertFile != "" || t.KeyFile != ""
	switch {
	case files && t.CertDir != "":
		p.add("%s: cert_file/key_file and cert_dir are two sources of a certificate: give one", at)
	case files && (t.CertFile == "" || t.KeyFile == ""):
		p.add("%s: both cert_file and key_file are required", at)
	case !files && t.CertDir == "":
		p.add("%s: give cert_file and key_file, or cert_dir", at)
	}
	if t.CertDir != "" {
		for i, h := range a.hostsAll() {
			if strings.HasPrefix(h, "*") {
				p.add("%s: cert_dir holds one certificate per host name, so hosts[%d] %q cannot be a wildcard", at, i, h)
			}
		}
	}
	if t.Redirect && t.HTTP == "" {
		p.add("%s.redirect: set without http (the plain listener to redirect from)", at)
	}
	if t.HTTP != "" {
		checkListener(p, at+".http", t.HTTP)
		if tlsOn[t.HTTP] {
			p.add("%s.http: %s is an HTTPS listener; http names a plain one", at, t.HTTP)
		}
		if c.isTestListener(t.HTTP) {
			p.add("%s.http: %s is a test listener", at, t.HTTP)
		}
	}
	if t.ACME != nil && t.CertDir == "" {
		p.add("%s.acme: set without cert_dir, where its certificates are kept", at)
	}
}

// checkEdgeHosts refuses two apps that claim one host and path on a plain
// listener, one of them through tls.http.
func (c *Config) checkEdgeHosts(p *problems) {
	edges := c.edgeListeners()
	owner := map[string]string{}
	for _, name := range sortedKeys(c.Apps) {
		a := c.Apps[name]
		if a == nil {
			continue
		}
		var addrs []string
		if a.TLS != nil && a.TLS.HTTP != "" {
			addrs = append(addrs, a.TLS.HTTP)
		}
		if prod := c.listenersOf(a).production; edges[prod] && (a.TLS == nil || a.TLS.HTTP != prod) {
			addrs = append(addrs, prod)
		}
		for _, addr := range addrs {
			for _, h := range a.Hosts {
				key := addr + " " + h + " " + a.pathPrefix()
				if other, ok := owner[key]; ok && other != name {
					p.add("apps.%s: host %q on %s is claimed by app %s and by app %s", name, h, addr, other, name)
				}
				owner[key] = name
			}
		}
	}
}

// hostsAll lists the hosts of both listeners of the app, without repeats.
func (a *AppConfig) hostsAll() []string {
	seen := map[string]bool{}
	var out []string
	for _, h := range append(append([]string(nil), a.Hosts...), a.TestHosts...) {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	sort.Strings(out)
	return out
}

func (c *Config) isTestListener(addr string) bool {
	for _, a := range c.Apps {
		if a != nil && c.listenersOf(a).test == addr {
			return true
		}
	}
	return false
}

// edgeListeners lists the plain listeners that apps name in tls.http.
func (c *Config) edgeListeners() map[string]bool {
	out := map[string]bool{}
	for _, a := range c.Apps {
		if a != nil && a.TLS != nil && a.TLS.HTTP != "" {
			out[a.TLS.HTTP] = true
		}
	}
	return out
}
