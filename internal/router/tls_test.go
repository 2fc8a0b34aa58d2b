package router

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// testCA issues certificates for the tests' host names.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bluegreen test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &testCA{cert: c, key: k, pool: pool}
}

// issue writes DIR/NAME.crt and DIR/NAME.key for hosts, valid from nb to na.
func (ca *testCA) issue(t testing.TB, dir, name string, hosts []string, nb, na time.Time) (certFile, keyFile string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: hosts[0]}, DNSNames: hosts,
		NotBefore: nb, NotAfter: na, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
	return certFile, keyFile
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// tlsClient trusts ca and dials addr whatever the URL's host, so that the
// URL's host is the server name sent; h2 picks HTTP/2.
func tlsClient(ca *testCA, addr string, h2 bool) *http.Client {
	cfg := &tls.Config{RootCAs: ca.pool}
	dial := func(network, _ string) (net.Conn, error) { return net.Dial("tcp", addr) }
	if h2 {
		return &http.Client{Transport: &http2.Transport{TLSClientConfig: cfg,
			DialTLS: func(network, a string, c *tls.Config) (net.Conn, error) {
				raw, err := dial(network, a)
				if err != nil {
					return nil, err
				}
				host, _, _ := net.SplitHostPort(a)
				cc := c.Clone()
				cc.ServerName = host
				tc := tls.Client(raw, cc)
				return tc, tc.Handshake()
			}}}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg,
		Dial: dial, DialContext: nil, ForceAttemptHTTP2: false}}
}

// tlsApps is a table of apps on one TLS production listener, one per host.
func tlsApps(prod string, apps map[string]*AppTLS, backend string) *Config {
	cfg := &Config{Production: prod, Apps: map[string]*AppConfig{}}
	for host, t := range apps {
		name := strings.ReplaceAll(strings.TrimSuffix(host, ".test"), ".", "-")
		cfg.Apps[name] = &AppConfig{Hosts: []string{host}, TLS: t,
			Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{backend}}}}
	}
	return cfg
}

func TestTLSOneBadCertificateCostsOnlyItsHost(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	now := time.Now()
	good, goodKey := ca.issue(t, dir, "good", []string{"good.test"}, now.Add(-time.Hour), now.Add(time.Hour))
	expired, expiredKey := ca.issue(t, dir, "expired", []string{"expired.test"}, now.Add(-2*time.Hour), now.Add(-time.Hour))
	other, otherKey := ca.issue(t, dir, "other", []string{"somewhere.else"}, now.Add(-time.Hour), now.Add(time.Hour))
	_, strayKey := ca.issue(t, dir, "stray", []string{"stray.test"}, now.Add(-time.Hour), now.Add(time.Hour))
	be := newBackend(t, "blue")
	prod := freeAddr(t)
	r := New(Options{})
	t.Cleanup(func() { r.Shutdown(t.Context()) })
	_, err := r.Apply(tlsApps(prod, map[string]*AppTLS{
		"good.test":     {CertFile: good, KeyFile: goodKey},
		"expired.test":  {CertFile: expired, KeyFile: expiredKey},
		"mismatch.test": {CertFile: other, KeyFile: otherKey},
		"badkey.test":   {CertFile: good, KeyFile: strayKey},
		"missing.test":  {CertFile: filepath.Join(dir, "nothing.crt"), KeyFile: goodKey},
	}, be.addr()))
	if err != nil {
		t.Fatalf("a table with bad certificates is applied all the same: %v", err)
	}
	for _, h2 := range []bool{false, true} {
		resp, body := get(t, tlsClient(ca, prod, h2), "https://good.test/")
		if body != "blue" || (resp.ProtoMajor == 2) != h2 {
			t.Fatalf("good.test (h2 %v): %s %q", h2, resp.Proto, body)
		}
	}
	want := map[string]string{
		"expired.test":  "expired on",
		"mismatch.test": "does not cover host mismatch.test (it names somewhere.else)",
		"badkey.test":   "does not match the certificate",
		"missing.test":  "nothing.crt",
	}
	status := map[string]CertStatus{}
	for _, s := range r.TLSStatus() {
		status[s.Host] = s
	}
	for host, msg := range want {
		if _, err := tlsClient(ca, prod, false).Get("https://" + host + "/"); err == nil {
			t.Errorf("%s: served with a bad certificate", host)
		}
		if got := status[host].Error; !strings.Contains(got, msg) {
			t.Errorf("%s: status error %q, want it to say %q", host, got, msg)
		}
	}
	if s := status["good.test"]; s.Error != "" || s.NotAfter.IsZero() {
		t.Errorf("good.test status: %+v", s)
	}
	// A certificate mended on disk is served after a reload, without a push.
	ca.issue(t, dir, "expired", []string{"expired.test"}, now.Add(-time.Hour), now.Add(time.Hour))
	r.ReloadTLS()
	if _, body := get(t, tlsClient(ca, prod, true), "https://expired.test/"); body != "blue" {
		t.Fatalf("renewed certificate: %q", body)
	}
}

func TestTLSNoServerNameUsesCatchAll(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	now := time.Now()
	c, k := ca.issue(t, dir, "c", []string{"127.0.0.1", "any.test"}, now.Add(-time.Hour), now.Add(time.Hour))
	be := newBackend(t, "blue")
	prod := freeAddr(t)
	cfg := &Config{Production: prod, Apps: map[string]*AppConfig{"any": {TLS: &AppTLS{CertFile: c, KeyFile: k},
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{be.addr()}}}}}}
	startRouter(t, cfg)
	conn, err := tls.Dial("tcp", prod, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("a client without SNI gets the certificate of host *: %v", err)
	}
	conn.Close()
}

func TestEdgeListenerRedirectsAndAnswersChallenges(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	now := time.Now()
	ca.issue(t, dir, "shop.test", []string{"shop.test"}, now.Add(-time.Hour), now.Add(time.Hour))
	be := newBackend(t, "blue")
	prod, plain := freeAddr(t), freeAddr(t)
	r := startRouter(t, &Config{Production: prod, Apps: map[string]*AppConfig{"shop": {Hosts: []string{"shop.test"},
		TLS:    &AppTLS{CertDir: dir, HTTP: plain, Redirect: true},
		Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{be.addr()}}}}}})
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("POST", "http://"+plain+"/cart?x=1", strings.NewReader("item"))
	req.Host = "shop.test"
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, port, _ := net.SplitHostPort(prod)
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "https://shop.test:"+port+"/cart?x=1" {
		t.Fatalf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	r.SetChallenge("tok1", "tok1.thumb")
	resp, body := get(t, http.DefaultClient, "http://"+plain+acmeChallengePath+"tok1", "Host", "shop.test")
	if resp.StatusCode != 200 || body != "tok1.thumb" {
		t.Fatalf("challenge: %d %q", resp.StatusCode, body)
	}
	r.DeleteChallenge("tok1")
	if resp, _ := get(t, http.DefaultClient, "http://"+plain+acmeChallengePath+"tok1"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("forgotten challenge: %d", resp.StatusCode)
	}
	// Without redirect the plain listener serves the app.
	cfg := r.Config()
	cfg.Apps["shop"].TLS.Redirect = false
	if _, err := r.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest("GET", "http://"+plain+"/", nil)
	req.Host = "shop.test"
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "blue" {
		t.Fatalf("plain listener without redirect: %d %q", resp.StatusCode, b)
	}
	if _, body := get(t, tlsClient(ca, prod, true), "https://shop.test/"); body != "blue" {
		t.Fatalf("https: %q", body)
	}
}

func TestTLSGarbageAndHandshakeFlood(t *testing.T) {
	d, n := handshakeTimeout, maxHandshakes
	// Restored once the router (stopped by a cleanup registered later, so
	// run earlier) has no handshake left to read them.
	t.Cleanup(func() { handshakeTimeout, maxHandshakes = d, n })
	handshakeTimeout, maxHandshakes = 2*time.Second, 8
	dir := t.TempDir()
	ca := newTestCA(t)
	now := time.Now()
	c, k := ca.issue(t, dir, "good", []string{"good.test"}, now.Add(-time.Hour), now.Add(time.Hour))
	be := newBackend(t, "blue")
	prod := freeAddr(t)
	startRouter(t, tlsApps(prod, map[string]*AppTLS{"good.test": {CertFile: c, KeyFile: k}}, be.addr()))
	// Garbage, and half ClientHellos held open: more than the router takes at once.
	var held []net.Conn
	for i := range 32 {
		conn, err := net.Dial("tcp", prod)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, conn)
		if i%2 == 0 {
			fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: good.test\r\n\r\n")
		} else {
			conn.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}) // a ClientHello that never ends
		}
	}
	// While they are held, a real client gets through: the oldest
	// handshakes make room for it.
	for _, h2 := range []bool{false, true} {
		if _, body := get(t, tlsClient(ca, prod, h2), "https://good.test/"); body != "blue" {
			t.Fatalf("during the flood (h2 %v): %q", h2, body)
		}
	}
	// Each one is closed by the router: at once for garbage, when evicted,
	// or at its handshake deadline.
	for _, conn := range held {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := bufio.NewReader(conn).ReadByte(); err == nil {
			// The garbage may get a TLS alert first; then the close follows.
			io.Copy(io.Discard, conn)
		}
		conn.Close()
	}
	for _, h2 := range []bool{false, true} {
		if _, body := get(t, tlsClient(ca, prod, h2), "https://good.test/"); body != "blue" {
			t.Fatalf("after the flood (h2 %v): %q", h2, body)
		}
	}
}

func TestAppTLSValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		app  func(a *AppConfig)
		want string
	}{
		{"no source", func(a *AppConfig) { a.TLS = &AppTLS{} }, "give cert_file and key_file, or cert_dir"},
		{"two sources", func(a *AppConfig) { a.TLS = &AppTLS{CertFile: "a", KeyFile: "b", CertDir: "d"} }, "two sources"},
		{"half a pair", func(a *AppConfig) { a.TLS = &AppTLS{CertFile: "a"} }, "both cert_file and key_file"},
		{"wildcard in cert_dir", func(a *AppConfig) { a.Hosts = []string{"*.shop.test"}; a.TLS = &AppTLS{CertDir: "d"} }, "cannot be a wildcard"},
		{"redirect without http", func(a *AppConfig) { a.TLS = &AppTLS{CertDir: "d", Redirect: true} }, "redirect: set without http"},
		{"http on the https listener", func(a *AppConfig) { a.TLS = &AppTLS{CertDir: "d", HTTP: "127.0.0.1:1443"} }, "is an HTTPS listener"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &Config{Production: "127.0.0.1:1443", Apps: map[string]*AppConfig{"shop": {Hosts: []string{"shop.test"},
				Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{"127.0.0.1:9"}}}}}}
			tc.app(cfg.Apps["shop"])
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	mixed := &Config{Production: "127.0.0.1:1443", Apps: map[string]*AppConfig{
		"a": {Hosts: []string{"a.test"}, TLS: &AppTLS{CertDir: "d"}, Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{"127.0.0.1:9"}}}},
		"b": {Hosts: []string{"b.test"}, Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{"127.0.0.1:9"}}}},
	}}
	if err := mixed.Validate(); err == nil || !strings.Contains(err.Error(), "apps.b: the production listener 127.0.0.1:1443 serves other apps over HTTPS") {
		t.Fatalf("plain app on an HTTPS listener: %v", err)
	}
}

func TestEdgeHostsClaimedTwice(t *testing.T) {
	app := func(tls *AppTLS, prod string) *AppConfig {
		return &AppConfig{Production: prod, Hosts: []string{"shop.test"}, TLS: tls,
			Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{"127.0.0.1:9"}}}}
	}
	cfg := &Config{Apps: map[string]*AppConfig{
		"a": app(&AppTLS{CertDir: "d", HTTP: "127.0.0.1:1080"}, "127.0.0.1:1443"),
		"b": app(nil, "127.0.0.1:1080"),
	}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `apps.b: host "shop.test" on 127.0.0.1:1080 is claimed by app a and by app b`) {
		t.Fatalf("got %v", err)
	}
}

// A candidate that adds HTTPS has its test listener served as it will be.
func TestTestListenerTLSOfACandidate(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	now := time.Now()
	c, k := ca.issue(t, dir, "shop", []string{"shop.test"}, now.Add(-time.Hour), now.Add(time.Hour))
	blue, green := newBackend(t, "blue"), newBackend(t, "green")
	cfg := twoFleets(blue.addr(), green.addr(), 100, 0)
	cfg.Apps["shop"].Hosts = []string{"shop.test"}
	cfg.Apps["shop"].TestListenerTLS = &AppTLS{CertFile: c, KeyFile: k}
	r := startRouter(t, cfg)
	req, _ := http.NewRequest("GET", prodURL(r)+"/", nil)
	req.Host = "shop.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "blue" {
		t.Fatalf("plain production: %q", b)
	}
	if _, body := get(t, tlsClient(ca, r.Config().Test, true), "https://shop.test/"); body != "green" {
		t.Fatalf("HTTPS test listener: %q", body)
	}
	bad := r.Config()
	bad.Apps["shop"].TestListenerPlain = true
	if _, err := r.Apply(bad); err == nil || !strings.Contains(err.Error(), "contradict") {
		t.Fatalf("both: %v", err)
	}
}
