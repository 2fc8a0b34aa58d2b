package spec

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const tlsBase = `app: shop
process:
  command: [./shop]
router:
  production: 127.0.0.1:8443
  hosts: [shop.test]
`

func TestTLSRulesNameTheirPlace(t *testing.T) {
	for _, tc := range []struct{ tls, want string }{
		{"  tls: {}\n", "spec.yaml:7:8: router.tls: give cert_file and key_file, or acme"},
		{"  tls:\n    cert_file: /a.crt\n", "spec.yaml:8:5: router.tls.key_file: cert_file is set without key_file"},
		{"  tls:\n    cert_file: a.crt\n    key_file: /a.key\n", "spec.yaml:8:16: router.tls.cert_file: want an absolute path on the server"},
		{"  tls:\n    cert_file: /a.crt\n    key_file: /a.key\n    acme: {}\n", "router.tls: give cert_file and key_file, or acme, not both"},
		{"  tls:\n    acme: {}\n", "router.tls.http: acme answers HTTP-01 challenges on a plain listener"},
		{"  tls:\n    acme: {directory: 'http://ca.test/dir'}\n    http: 127.0.0.1:8080\n", "router.tls.acme.directory: want an https:// URL"},
		{"  tls:\n    cert_file: /a.crt\n    key_file: /a.key\n    redirect: true\n", "router.tls.redirect: set without router.tls.http"},
		{"  tls:\n    cert_file: /a.crt\n    key_file: /a.key\n    http: 127.0.0.1:8443\n", "router.tls.http: the plain listener 127.0.0.1:8443 must differ from router.production"},
	} {
		_, err := Parse([]byte(tlsBase+tc.tls), "spec.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %q", tc.tls, err, tc.want)
		}
	}
	wild := strings.Replace(tlsBase, "[shop.test]", `["*.shop.test"]`, 1) + "  tls:\n    acme: {}\n    http: 127.0.0.1:8080\n"
	if _, err := Parse([]byte(wild), "spec.yaml"); err == nil || !strings.Contains(err.Error(), "router.hosts[0]: acme certifies names with the HTTP-01 challenge, which cannot prove a wildcard") {
		t.Errorf("wildcard with acme: %v", err)
	}
	ok := tlsBase + "  tls:\n    acme: {email: ops@shop.test}\n    http: 127.0.0.1:8080\n    redirect: true\n"
	if _, err := Parse([]byte(ok), "spec.yaml"); err != nil {
		t.Errorf("a good acme section: %v", err)
	}
}

func TestCheckTLSFiles(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	good, goodKey := selfSigned(t, dir, "good", "shop.test", now.Add(-time.Hour), now.Add(time.Hour))
	old, oldKey := selfSigned(t, dir, "old", "shop.test", now.Add(-2*time.Hour), now.Add(-time.Hour))
	for _, tc := range []struct{ cert, key, want string }{
		{good, goodKey, ""},
		{old, oldKey, "spec.yaml:8:16: router.tls.cert_file: the certificate in " + old + " expired on"},
		{good, oldKey, "spec.yaml:9:15: router.tls.key_file: the key in " + oldKey + " does not match the certificate in " + good},
	} {
		s, err := Parse([]byte(tlsBase+"  tls:\n    cert_file: "+tc.cert+"\n    key_file: "+tc.key+"\n"), "spec.yaml")
		if err != nil {
			t.Fatal(err)
		}
		err = s.CheckTLSFiles(now)
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s/%s: got %v, want %q", filepath.Base(tc.cert), filepath.Base(tc.key), err, tc.want)
		}
	}
}

func selfSigned(t *testing.T, dir, name, host string, nb, na time.Time) (string, string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host}, NotBefore: nb, NotAfter: na}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	c, kf := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	os.WriteFile(c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return c, kf
}
