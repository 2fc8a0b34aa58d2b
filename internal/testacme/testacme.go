// Package testacme runs Pebble, Let's Encrypt's ACME test server, on
// loopback for tests, with a DNS server of its own that resolves the tests'
// host names to 127.0.0.1 so that Pebble's HTTP-01 validation reaches the
// router under test.
package testacme

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"bluegreen/internal/freeport"
)

// Options configure a Pebble.
type Options struct {
	// HTTPPort is the port Pebble validates HTTP-01 challenges on: the
	// router's plain listener.
	HTTPPort int
	// Validity is the lifetime of the certificates it issues (default 90 days).
	Validity time.Duration
	// Hosts resolve to 127.0.0.1; other names do not resolve.
	Hosts []string
}

// Pebble is a running Pebble.
type Pebble struct {
	// Directory is the ACME directory URL.
	Directory string
	// CARoots is a PEM file of the root that Directory's TLS certificate
	// chains to.
	CARoots string
	mgmt    string
	client  *http.Client
	log     *bytes.Buffer
	logMu   *sync.Mutex
}

// Start runs Pebble until the test ends.
func Start(t testing.TB, o Options) *Pebble {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile, certFile, keyFile := serverCert(t, dir)
	dns := startDNS(t, o.Hosts)
	listen, mgmt, tlsPort := freeport.Must(t), freeport.Must(t), freeport.Must(t)
	_, tp, _ := net.SplitHostPort(tlsPort)
	validity := o.Validity
	if validity == 0 {
		validity = 90 * 24 * time.Hour
	}
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": listen, "managementListenAddress": mgmt,
		"certificate": certFile, "privateKey": keyFile,
		"httpPort": o.HTTPPort, "tlsPort": atoi(tp),
		"externalAccountBindingRequired": false,
		"keyAlgorithm":                   "ecdsa",
		"profiles": map[string]any{"default": map[string]any{
			"description": "tests", "validityPeriod": int(validity.Seconds())}},
	}}
	cfgFile := filepath.Join(dir, "pebble.json")
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", cfgFile, "-dnsserver", dns)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	p := &Pebble{Directory: "https://" + listen + "/dir", CARoots: caFile, mgmt: "https://" + mgmt,
		log: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	w := &lockedWriter{mu: p.logMu, b: p.log}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting pebble: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("pebble's log:\n%s", p.Log())
		}
	})
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(caFile)
	pool.AppendCertsFromPEM(caPEM)
	p.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := p.client.Get(p.Directory)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-done:
			t.Fatalf("pebble exited at start:\n%s", p.Log())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not answer on %s within 30s:\n%s", p.Directory, p.Log())
		}
	}
	return p
}

// Log is what Pebble printed so far.
func (p *Pebble) Log() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

// RootPEM returns the root Pebble's certificates chain to, in PEM (it
// makes a new root at each start).
func (p *Pebble) RootPEM(t testing.TB) []byte {
	t.Helper()
	resp, err := p.client.Get(p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pebble's root: %d %v", resp.StatusCode, err)
	}
	return b
}

// Roots is RootPEM as a pool.
func (p *Pebble) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(p.RootPEM(t)) {
		t.Fatal("pebble's root is not PEM")
	}
	return pool
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// serverCert makes a CA and a certificate for 127.0.0.1 and localhost
// signed by it, for Pebble's own HTTPS.
func serverCert(t testing.TB, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "testacme CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for path, block := range map[string]*pem.Block{caFile: {Type: "CERTIFICATE", Bytes: caDER},
		certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: kb}} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}

// startDNS answers A queries for hosts with 127.0.0.1, AAAA queries with
// nothing, and every other name with NXDOMAIN, over TCP: the transport
// Pebble uses for a resolver given with -dnsserver.
func startDNS(t testing.TB, hosts []string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	known := map[string]bool{}
	for _, h := range hosts {
		known[strings.ToLower(strings.TrimSuffix(h, "."))+"."] = true
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveDNS(c, known)
		}
	}()
	return ln.Addr().String()
}

// serveDNS answers the length-prefixed queries of one TCP connection.
func serveDNS(c net.Conn, known map[string]bool) {
	defer c.Close()
	for {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		var size [2]byte
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		q := make([]byte, int(size[0])<<8|int(size[1]))
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		out, err := dnsAnswer(q, known)
		if err != nil {
			return
		}
		if _, err := c.Write(append([]byte{byte(len(out) >> 8), byte(len(out))}, out...)); err != nil {
			return
		}
	}
}

func dnsAnswer(query []byte, known map[string]bool) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeSuccess}
	if !known[strings.ToLower(q.Name.String())] {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if rh.RCode == dnsmessage.RCodeSuccess && q.Type == dnsmessage.TypeA {
		if err := b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1},
			dnsmessage.AResource{A: [4]byte{127, 0, 0, 1}}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}

// script builds Pebble, or finds it built, and prints its path.
const script = "scripts/build-pebble.sh"

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func binary() (string, error) {
	binOnce.Do(func() { binPath, binErr = build() })
	return binPath, binErr
}

func build() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, script)); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no " + script + " in the working directory or above it")
		}
		dir = parent
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(dir, script))
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("pebble is not built and %s could not build it (%v); run ./scripts/setup.sh where the Go module proxy can be reached\n%s", script, err, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}
