package spec

import (
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// TLS is the app's HTTPS: a certificate from files, or one per host
// obtained and renewed by the server with ACME. The production and test
// listeners then speak TLS (1.2 and later) and HTTP/2.
type TLS struct {
	// CertFile and KeyFile are absolute paths, on the server, of a PEM
	// certificate chain and its key.
	CertFile string `yaml:"cert_file,omitempty" json:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty" json:"key_file,omitempty"`
	// ACME has the server obtain a certificate for each of router.hosts
	// with the HTTP-01 challenge, answered on HTTP.
	ACME *ACME `yaml:"acme,omitempty" json:"acme,omitempty"`
	// HTTP is a plain-HTTP listener for the app's hosts (0.0.0.0:80 as a
	// rule): ACME challenges are answered there, and, with Redirect, every
	// other request is sent to HTTPS.
	HTTP     string `yaml:"http,omitempty" json:"http,omitempty"`
	Redirect bool   `yaml:"redirect,omitempty" json:"redirect,omitempty"`
}

// ACME is where certificates come from; what is left out is the server's
// (bluegreen server --acme-directory, --acme-ca-roots, --acme-email).
type ACME struct {
	Email string `yaml:"email,omitempty" json:"email,omitempty"`
	// Directory is the ACME directory URL.
	Directory string `yaml:"directory,omitempty" json:"directory,omitempty"`
	// CARoots is a PEM file, on the server, of roots trusted when talking
	// to Directory (for a private ACME server).
	CARoots string `yaml:"ca_roots,omitempty" json:"ca_roots,omitempty"`
}

func (s *Spec) validateTLS(c *collector) {
	t := s.Router.TLS
	if t == nil {
		return
	}
	const at = "router.tls"
	files := t.CertFile != "" || t.KeyFile != ""
	switch {
	case files && t.ACME != nil:
		c.add(at, "give cert_file and key_file, or acme, not both")
	case files && t.CertFile == "":
		c.add(at+".cert_file", "key_file is set without cert_file")
	case files && t.KeyFile == "":
		c.add(at+".key_file", "cert_file is set without key_file")
	case !files && t.ACME == nil:
		c.add(at, "give cert_file and key_file, or acme")
	}
	for _, f := range []struct{ key, path string }{{"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
		if f.path != "" && !filepath.IsAbs(f.path) {
			c.add(at+"."+f.key, "want an absolute path on the server, got %s", quote(f.path))
		}
	}
	if t.HTTP != "" {
		if hp, ok := listener(c, at+".http", t.HTTP); ok {
			for _, other := range []struct{ key, addr string }{{"router.production", s.Router.Production}, {"router.test", s.Router.Test}} {
				if strings.HasSuffix(other.addr, ":"+strconv.Itoa(hp.port)) {
					c.add(at+".http", "the plain listener %s must differ from %s %s", t.HTTP, other.key, other.addr)
				}
			}
		}
	}
	if t.Redirect && t.HTTP == "" {
		c.add(at+".redirect", "set without router.tls.http, the plain listener to redirect from")
	}
	if a := t.ACME; a != nil {
		if t.HTTP == "" {
			c.add(at+".http", "acme answers HTTP-01 challenges on a plain listener: set http (0.0.0.0:80 for a public certificate authority)")
		}
		if len(s.Router.Hosts) == 0 && !s.IsStack() {
			c.add("router.hosts", "acme needs the host names to certify: list them in router.hosts")
		}
		for i, h := range s.Router.Hosts {
			if strings.HasPrefix(h, "*") {
				c.add("router.hosts["+strconv.Itoa(i)+"]", "acme certifies names with the HTTP-01 challenge, which cannot prove a wildcard %s: use cert_file and key_file", quote(h))
			}
		}
		if a.Directory != "" {
			if u, err := url.Parse(a.Directory); err != nil || u.Scheme != "https" || u.Host == "" {
				c.add(at+".acme.directory", "want an https:// URL of an ACME directory, got %s", quote(a.Directory))
			}
		}
		if a.CARoots != "" && !filepath.IsAbs(a.CARoots) {
			c.add(at+".acme.ca_roots", "want an absolute path on the server, got %s", quote(a.CARoots))
		}
		if a.Email != "" && (!strings.Contains(a.Email, "@") || strings.ContainsAny(a.Email, " \t\r\n,")) {
			c.add(at+".acme.email", "bad email address %s", quote(a.Email))
		}
	}
}

// CheckTLSFiles reads the certificate and key router.tls names, as the
// server does when a revision is created: a pair that does not load, does
// not match, is not valid at now, or does not cover router.hosts is
// reported at its place in the file.
func (s *Spec) CheckTLSFiles(now time.Time) error {
	t := s.Router.TLS
	if t == nil || t.CertFile == "" || t.KeyFile == "" {
		return nil
	}
	c := &collector{file: s.file, pos: s.pos}
	const at = "router.tls.cert_file"
	pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	switch {
	case err != nil && strings.Contains(err.Error(), "does not match"):
		c.add("router.tls.key_file", "the key in %s does not match the certificate in %s", t.KeyFile, t.CertFile)
		return c.err()
	case err != nil:
		c.add(at, "cannot load the certificate and key: %v", err)
		return c.err()
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		c.add(at, "cannot parse the certificate in %s: %v", t.CertFile, err)
		return c.err()
	}
	switch {
	case now.After(leaf.NotAfter):
		c.add(at, "the certificate in %s expired on %s", t.CertFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		c.add(at, "the certificate in %s is not valid before %s", t.CertFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	for i, h := range s.Router.Hosts {
		probe := h
		if strings.HasPrefix(h, "*.") {
			probe = "bluegreen-probe" + h[1:]
		}
		if err := leaf.VerifyHostname(probe); err != nil {
			c.add("router.hosts["+strconv.Itoa(i)+"]", "the certificate in %s does not cover %s (it names %s)", t.CertFile, h, strings.Join(leaf.DNSNames, ", "))
		}
	}
	return c.err()
}
