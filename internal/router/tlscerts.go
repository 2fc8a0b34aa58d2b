package router

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"
)

// certEntry is the certificate one host pattern of a listener is served
// with, or why it has none.
type certEntry struct {
	app, host string
	source    string // the files it came from
	cert      *tls.Certificate
	err       error
}

// certSet picks a listener's certificate by the server name a client sends.
type certSet struct {
	exact map[string]*certEntry
	wild  []*certEntry // host "*.suffix", longest suffix first
	any   *certEntry   // host "*"
	def   *certEntry   // the listener's own certificate (production_tls, test_tls)
}

// errNoServerName answers a client that names no host on a listener where
// no certificate serves every host.
var errNoServerName = errors.New("the client sent no server name (SNI) and no certificate on this listener serves every host")

// get returns the certificate for the server name a client asked for.
func (s *certSet) get(name string) (*tls.Certificate, error) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	e := s.exact[name]
	if e == nil && name != "" {
		for _, w := range s.wild {
			suffix := w.host[1:]
			if strings.HasSuffix(name, suffix) && len(name) > len(suffix) {
				e = w
				break
			}
		}
	}
	if e == nil {
		e = s.any
	}
	if e == nil {
		e = s.def
	}
	if e == nil {
		if name == "" {
			return nil, errNoServerName
		}
		return nil, fmt.Errorf("no certificate for host %q on this listener", name)
	}
	if e.err != nil {
		return nil, e.err
	}
	return e.cert, nil
}

// entries lists every entry of the set, for status.
func (s *certSet) entries() []*certEntry {
	var out []*certEntry
	for _, h := range sortedKeys(s.exact) {
		out = append(out, s.exact[h])
	}
	out = append(out, s.wild...)
	for _, e := range []*certEntry{s.any, s.def} {
		if e != nil {
			out = append(out, e)
		}
	}
	return out
}

// certLoader loads each pair of files once per table.
type certLoader struct {
	now   time.Time
	pairs map[[2]string]loaded
}

type loaded struct {
	cert *tls.Certificate
	err  error
}

func newCertLoader(now time.Time) *certLoader {
	return &certLoader{now: now, pairs: map[[2]string]loaded{}}
}

// load reads a certificate and its key, and refuses one that is not valid
// now: serving an expired certificate only moves the error to every client.
func (l *certLoader) load(certFile, keyFile string) (*tls.Certificate, error) {
	key := [2]string{certFile, keyFile}
	if got, ok := l.pairs[key]; ok {
		return got.cert, got.err
	}
	c, err := loadPair(certFile, keyFile, l.now)
	l.pairs[key] = loaded{c, err}
	return c, err
}

func loadPair(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		// The standard messages name no file; which one is wrong matters.
		if strings.Contains(err.Error(), "does not match") {
			return nil, fmt.Errorf("the key in %s does not match the certificate in %s", keyFile, certFile)
		}
		return nil, fmt.Errorf("loading certificate %s with key %s: %w", certFile, keyFile, err)
	}
	leaf := c.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parsing certificate %s: %w", certFile, err)
		}
		c.Leaf = leaf
	}
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("certificate %s expired on %s", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("certificate %s is not valid before %s", certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &c, nil
}

// entryFor is the certificate of one host of an app with TLS.
func (l *certLoader) entryFor(app string, t *AppTLS, host string) *certEntry {
	e := &certEntry{app: app, host: host}
	certFile, keyFile := t.CertFile, t.KeyFile
	if t.CertDir != "" {
		certFile, keyFile = filepath.Join(t.CertDir, host+".crt"), filepath.Join(t.CertDir, host+".key")
	}
	e.source = certFile
	c, err := l.load(certFile, keyFile)
	if err != nil {
		if t.CertDir != "" && errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("no certificate for host %s yet (%s does not exist)", host, certFile)
		}
		e.err = fmt.Errorf("app %s, host %s: %w", app, host, err)
		return e
	}
	if probe := coverName(host); probe != "" {
		if err := c.Leaf.VerifyHostname(probe); err != nil {
			e.err = fmt.Errorf("app %s: certificate %s does not cover host %s (it names %s)", app, certFile, host, certNames(c.Leaf))
			return e
		}
	}
	e.cert = c
	return e
}

// coverName is a name the certificate of host pattern h must cover ("" for
// "*", which any certificate may serve).
func coverName(h string) string {
	switch {
	case h == "*":
		return ""
	case strings.HasPrefix(h, "*."):
		return "bluegreen-probe" + h[1:]
	}
	return h
}

func certNames(c *x509.Certificate) string {
	names := c.DNSNames
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = []string{c.Subject.CommonName}
	}
	if len(names) == 0 {
		return "no host"
	}
	return strings.Join(names, ", ")
}

// certSets builds the certificate set of every TLS listener of cfg. Errors
// are kept in the entries of the hosts they concern.
func (cfg *Config) certSets(now time.Time) map[string]*certSet {
	l := newCertLoader(now)
	sets := map[string]*certSet{}
	set := func(addr string) *certSet {
		s := sets[addr]
		if s == nil {
			s = &certSet{exact: map[string]*certEntry{}}
			sets[addr] = s
		}
		return s
	}
	for _, name := range sortedKeys(cfg.Apps) {
		a := cfg.Apps[name]
		ls := cfg.listenersOf(a)
		for _, side := range []struct {
			addr  string
			files *TLSFiles
			hosts []string
			tls   *AppTLS
		}{{ls.production, ls.productionTLS, a.Hosts, a.TLS}, {ls.test, ls.testTLS, testHostsOf(a), a.testTLS()}} {
			if side.addr == "" {
				continue
			}
			if side.files != nil {
				s := set(side.addr)
				if s.def == nil {
					c, err := l.load(side.files.CertFile, side.files.KeyFile)
					s.def = &certEntry{app: "", host: "*", source: side.files.CertFile, cert: c, err: err}
				}
			}
			if side.tls == nil {
				continue
			}
			s := set(side.addr)
			for _, h := range side.hosts {
				e := l.entryFor(name, side.tls, h)
				switch {
				case h == "*":
					s.any = e
				case strings.HasPrefix(h, "*."):
					s.wild = append(s.wild, e)
				default:
					s.exact[h] = e
				}
			}
		}
	}
	for _, s := range sets {
		sortWild(s.wild)
	}
	return sets
}

func testHostsOf(a *AppConfig) []string {
	if len(a.TestHosts) > 0 {
		return a.TestHosts
	}
	return a.Hosts
}

func sortWild(w []*certEntry) {
	for i := 1; i < len(w); i++ {
		for j := i; j > 0 && len(w[j].host) > len(w[j-1].host); j-- {
			w[j], w[j-1] = w[j-1], w[j]
		}
	}
}
