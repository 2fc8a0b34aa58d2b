package e2e

import (
	"bytes"
	"context"
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
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"bluegreen/internal/testacme"
	"bluegreen/internal/testwait"
)

// An app served over HTTPS with a certificate the server obtains from an
// ACME server (Pebble, on loopback), as a user sets it up: router.tls in
// bluegreen.yaml, `bluegreen server` told where the ACME directory is, a
// deployment, curl. Then h2 clients (Go's and curl --http2) through a
// blue/green switch under load, and a restart of the server that orders
// nothing new.
func TestHTTPSWithACMEAndH2ThroughASwitch(t *testing.T) {
	plain := freeAddr(t)
	_, plainPort, _ := net.SplitHostPort(plain)
	port, _ := strconv.Atoi(plainPort)
	pebble := testacme.Start(t, testacme.Options{HTTPPort: port, Hosts: []string{"shop.test"}})
	e := startDeployEnv(t, bin.bluegreen, func(e *deployEnv) {
		e.args = append(e.args, "--acme-directory", pebble.Directory, "--acme-ca-roots", pebble.CARoots)
	})
	spec := e.spec(specParts{router: fmt.Sprintf(`  hosts: [shop.test]
  tls:
    acme: {email: ops@shop.test}
    http: %s
    redirect: true
`, plain), extra: quick + "strategy:\n  steps:\n    - { weight: 50, pause: 2s }\n    - { weight: 100 }\n"})
	e.deployLive("v1", spec)

	// The certificate Pebble issued verifies with Pebble's root.
	roots := pebble.Roots(t)
	rootsFile := filepath.Join(t.TempDir(), "roots.pem")
	writeRoots(t, rootsFile, pebble)
	h1 := httpsClient(roots, e.prod, false)
	testwait.ForOr(t, 60*time.Second, "https://shop.test/ with a certificate from Pebble", func() bool {
		resp, err := h1.Get("https://shop.test/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, func() string { return e.cli("status", "shop").stdout })

	// curl, as a person would check it.
	_, prodPort, _ := net.SplitHostPort(e.prod)
	curl := func(args ...string) (string, error) {
		base := []string{"-sS", "--max-time", "10", "--resolve", "shop.test:" + prodPort + ":127.0.0.1", "--cacert", rootsFile}
		out, err := exec.Command("curl", append(base, args...)...).CombinedOutput()
		return string(out), err
	}
	out, err := curl("--http2", "-w", " %{http_version}", "https://shop.test:"+prodPort+"/")
	if err != nil || !strings.Contains(out, "hello from v1") || !strings.HasSuffix(out, " 2") {
		t.Fatalf("curl --http2: %v\n%s", err, out)
	}
	// Plain HTTP is redirected to HTTPS.
	redir, err := exec.Command("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H", "Host: shop.test", "http://"+plain+"/a?b=1").CombinedOutput()
	if want := "308 https://shop.test:" + prodPort + "/a?b=1"; err != nil || string(redir) != want {
		t.Fatalf("redirect: %q, want %q (%v)", redir, want, err)
	}
	if st := e.cli("status", "shop").stdout; !strings.Contains(st, "certificates:") || !strings.Contains(st, "shop.test") || !strings.Contains(st, "acme valid") {
		t.Fatalf("bluegreen status shows no valid certificate:\n%s", st)
	}

	// h2 streams through a switch to v2, from Go's client and from curl.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var goOK, goFail, curlOK, curlFail atomic.Int64
	var sawV2 atomic.Bool
	var firstErr atomic.Value
	h2 := httpsClient(roots, e.prod, true)
	for range 4 {
		wg.Go(func() {
			for i := 0; i < 20000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := h2.Get("https://shop.test/")
				if err != nil {
					goFail.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
					goFail.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%s %d %q", resp.Proto, resp.StatusCode, b))
					continue
				}
				if strings.Contains(string(b), "v2") {
					sawV2.Store(true)
				}
				goOK.Add(1)
			}
		})
	}
	wg.Go(func() {
		for i := 0; i < 2000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			out, err := curl("--http2", "-f", "-w", " %{http_version}", "https://shop.test:"+prodPort+"/")
			if err != nil || !strings.HasSuffix(out, " 2") {
				curlFail.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("curl: %v %s", err, out))
				continue
			}
			curlOK.Add(1)
		}
	})
	testwait.For(t, 30*time.Second, "h2 load to run", func() bool { return goOK.Load() > 50 && curlOK.Load() > 2 })
	e.deployLive("v2", spec)
	testwait.For(t, 30*time.Second, "v2 to answer over h2", sawV2.Load)
	close(stop)
	wg.Wait()
	t.Logf("h2 through the switch: Go client %d ok, %d failed; curl --http2 %d ok, %d failed", goOK.Load(), goFail.Load(), curlOK.Load(), curlFail.Load())
	if goFail.Load() != 0 || curlFail.Load() != 0 {
		t.Fatalf("failed h2 streams: Go %d, curl %d; first: %v", goFail.Load(), curlFail.Load(), firstErr.Load())
	}

	// A restart of the server finds the certificate it stored: no new order.
	issued := func() int {
		evs, err := e.api.Events(context.Background(), "shop", "", 0, false)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ev := range evs {
			if ev.Kind == "certificate_issued" {
				n++
			}
		}
		return n
	}
	if n := issued(); n != 1 {
		t.Fatalf("certificate_issued events before the restart: %d", n)
	}
	e.killServer()
	e.startServer()
	testwait.For(t, 30*time.Second, "the restarted server to find the certificate", func() bool {
		return strings.Contains(e.cli("status", "shop").stdout, "acme valid")
	})
	if n := issued(); n != 1 {
		t.Fatalf("the restarted server ordered again: %d certificate_issued events", n)
	}
	if resp, err := h1.Get("https://shop.test/"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
}

// httpsClient trusts roots and dials addr for any host name, sending the
// URL's host as the server name.
func httpsClient(roots *x509.CertPool, addr string, h2 bool) *http.Client {
	cfg := &tls.Config{RootCAs: roots}
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	if h2 {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{TLSClientConfig: cfg,
			DialTLSContext: func(ctx context.Context, network, a string, c *tls.Config) (net.Conn, error) {
				raw, err := dial(ctx, network, a)
				if err != nil {
					return nil, err
				}
				host, _, _ := net.SplitHostPort(a)
				cc := c.Clone()
				cc.ServerName = host
				tc := tls.Client(raw, cc)
				return tc, tc.HandshakeContext(ctx)
			}}}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DialContext: dial}}
}

// writeRoots writes Pebble's root for curl.
func writeRoots(t *testing.T, path string, p *testacme.Pebble) {
	t.Helper()
	if err := os.WriteFile(path, p.RootPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Certificate files that cannot serve are refused when the revision is
// created, each problem at its place in bluegreen.yaml.
func TestHTTPSCertificateFilesRefusedAtUpload(t *testing.T) {
	e := newDeployEnv(t)
	dir := t.TempDir()
	now := time.Now()
	expired, expiredKey := writeCert(t, dir, "expired", "shop.test", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	other, otherKey := writeCert(t, dir, "other", "elsewhere.test", now.Add(-time.Hour), now.Add(time.Hour))
	for _, tc := range []struct {
		name, cert, key, want string
	}{
		{"expired", expired, expiredKey, "router.tls.cert_file: the certificate in " + expired + " expired on"},
		{"not covering the host", other, otherKey, "router.hosts[0]: the certificate in " + other + " does not cover shop.test (it names elsewhere.test)"},
		{"a key of another certificate", other, expiredKey, "router.tls.key_file: the key in " + expiredKey + " does not match the certificate in " + other},
		{"missing", filepath.Join(dir, "none.pem"), otherKey, "router.tls.cert_file: cannot load the certificate and key: open " + filepath.Join(dir, "none.pem")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := e.spec(specParts{router: fmt.Sprintf("  hosts: [shop.test]\n  tls:\n    cert_file: %s\n    key_file: %s\n", tc.cert, tc.key)})
			_, err := e.api.UploadRevision(context.Background(), bytes.NewReader(e.bundle("v1", spec, nil)), "v1")
			if err == nil || !strings.Contains(err.Error(), "bluegreen.yaml:") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("upload: %v\nwant it to say %q", err, tc.want)
			}
		})
	}
}

// writeCert writes a self-signed certificate for host and its key.
func writeCert(t *testing.T, dir, name, host string, nb, na time.Time) (certFile, keyFile string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host}, NotBefore: nb, NotAfter: na}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// The README's HTTPS example, run as written against a server of the
// test's own (its /tmp paths moved into the test's directory).
func TestREADMEHTTPS(t *testing.T) {
	e := newDeployEnv(t)
	block := readmeBlock(t, readmeBlocks(t), "cat > /tmp/hello-tls/bluegreen.yaml")
	tmp := t.TempDir()
	if err := os.MkdirAll(tmp+"/hello", 0o755); err != nil {
		t.Fatal(err)
	}
	prog, err := os.ReadFile(bin.hello)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp+"/hello/hello", prog, 0o755); err != nil {
		t.Fatal(err)
	}
	move := strings.NewReplacer("/tmp/hello-tls", tmp+"/hello-tls", "/tmp/hello/", tmp+"/hello/", "/tmp/certs", tmp+"/certs",
		"bin/bluegreen", bin.bluegreen)
	cmd := exec.Command("bash", "-c", "set -e\n"+move.Replace(block))
	cmd.Env = append(os.Environ(), "BLUEGREEN_DATA="+e.data)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's HTTPS example failed: %v\n%s", err, out)
	}
	for _, want := range []string{"succeeded: revision 1 is live", "hello from dev", "308 https://hello.localhost:8443/"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("its output lacks %q:\n%s", want, out)
		}
	}
}

// HTTPS added to an app that is live over plain HTTP: the candidate names
// new listeners, its test listener speaks HTTPS from the start, and the old
// production address becomes the plain listener that redirects.
func TestHTTPSAddedToALiveApp(t *testing.T) {
	e := newDeployEnv(t)
	e.deployLive("v1", e.spec(specParts{router: "  hosts: [shop.test]\n", extra: quick}))
	dir := t.TempDir()
	now := time.Now()
	cert, key := writeCert(t, dir, "shop", "shop.test", now.Add(-time.Hour), now.Add(24*time.Hour))
	prod, test := freeAddr(t), freeAddr(t)
	v2 := strings.Replace(e.spec(specParts{extra: quick, router: fmt.Sprintf(
		"  hosts: [shop.test]\n  tls:\n    cert_file: %s\n    key_file: %s\n    http: %s\n    redirect: true\n", cert, key, e.prod)}),
		"  production: "+e.prod+"\n  test: "+e.test+"\n", "  production: "+prod+"\n  test: "+test+"\n", 1)
	d := e.deploy("v2", v2, nil)
	certPEM, _ := os.ReadFile(cert)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	// Green answers over HTTPS on its test listener before it is live.
	testwait.For(t, 60*time.Second, "green over HTTPS on its test listener", func() bool {
		resp, err := httpsClient(roots, test, true).Get("https://shop.test/")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(b), "hello from v2")
	})
	if d = e.waitEnd(d.ID, 60*time.Second); d.Outcome != "succeeded" {
		t.Fatalf("deploying v2: %s (%s)\n%s", d.Outcome, d.Reason, e.eventLog(d.ID))
	}
	resp, err := httpsClient(roots, prod, true).Get("https://shop.test/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "hello from v2") || resp.ProtoMajor != 2 {
		t.Fatalf("v2 over HTTPS: %s %q", resp.Proto, b)
	}
	_, port, _ := net.SplitHostPort(prod)
	redir, err := exec.Command("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H", "Host: shop.test", "http://"+e.prod+"/").CombinedOutput()
	if want := "308 https://shop.test:" + port + "/"; err != nil || string(redir) != want {
		t.Fatalf("the old address: %q, want %q (%v)", redir, want, err)
	}
}
