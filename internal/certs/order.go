package certs

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/acme"
)

// order obtains a certificate for host and writes it, with its new key,
// to the certificate directory.
func (m *Manager) order(ctx context.Context, host string, s settings) (*x509.Certificate, error) {
	cl, err := m.client(ctx, s)
	if err != nil {
		return nil, err
	}
	o, err := cl.AuthorizeOrder(ctx, acme.DomainIDs(host))
	if err != nil {
		return nil, fmt.Errorf("creating the order: %w", err)
	}
	for _, u := range o.AuthzURLs {
		if err := m.authorize(ctx, cl, u); err != nil {
			return nil, err
		}
	}
	if _, err = cl.WaitOrder(ctx, o.URI); err != nil {
		return nil, fmt.Errorf("waiting for the order: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{host}}, key)
	if err != nil {
		return nil, err
	}
	der, _, err := cl.CreateCertFromOrder(ctx, o, csr, true)
	if err != nil {
		return nil, fmt.Errorf("finalizing the order: %w", err)
	}
	if len(der) == 0 {
		return nil, errors.New("the certificate authority returned no certificate")
	}
	leaf, err := x509.ParseCertificate(der[0])
	if err != nil {
		return nil, fmt.Errorf("parsing the issued certificate: %w", err)
	}
	if err := leaf.VerifyHostname(host); err != nil {
		return nil, fmt.Errorf("the issued certificate does not cover %s: %w", host, err)
	}
	var chain []byte
	for _, d := range der {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	// The key first: the router pairs them only once both are in place,
	// and a crash between the two leaves the old certificate unusable
	// rather than a new key unused; the next pass orders again.
	if err := writeAtomic(m.keyFile(host), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return nil, fmt.Errorf("writing the key: %w", err)
	}
	if err := writeAtomic(m.certFile(host), chain, 0o644); err != nil {
		return nil, fmt.Errorf("writing the certificate: %w", err)
	}
	return leaf, nil
}

// authorize proves control of one identifier with HTTP-01.
func (m *Manager) authorize(ctx context.Context, cl *acme.Client, url string) error {
	z, err := cl.GetAuthorization(ctx, url)
	if err != nil {
		return fmt.Errorf("reading the authorization: %w", err)
	}
	if z.Status == acme.StatusValid {
		return nil
	}
	var chal *acme.Challenge
	for _, c := range z.Challenges {
		if c.Type == "http-01" {
			chal = c
		}
	}
	if chal == nil {
		return fmt.Errorf("the certificate authority offers no http-01 challenge for %s", z.Identifier.Value)
	}
	keyAuth, err := cl.HTTP01ChallengeResponse(chal.Token)
	if err != nil {
		return err
	}
	if err := m.opts.Router.SetChallenge(ctx, chal.Token, keyAuth); err != nil {
		return fmt.Errorf("giving the challenge to the router: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		m.opts.Router.DeleteChallenge(dctx, chal.Token)
	}()
	if _, err := cl.Accept(ctx, chal); err != nil {
		return fmt.Errorf("accepting the http-01 challenge: %w", err)
	}
	if _, err := cl.WaitAuthorization(ctx, z.URI); err != nil {
		return fmt.Errorf("the http-01 challenge for %s failed: %w", z.Identifier.Value, err)
	}
	return nil
}

// client is an ACME client with the account of the directory, registered
// on first use. The account key is kept per directory, so the same account
// is used from one start of the server to the next.
func (m *Manager) client(ctx context.Context, s settings) (*acme.Client, error) {
	hc := &http.Client{Timeout: 30 * time.Second}
	if s.caRoots != "" {
		pem, err := os.ReadFile(s.caRoots)
		if err != nil {
			return nil, fmt.Errorf("reading the CA roots of the ACME directory: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", s.caRoots)
		}
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			Proxy: http.ProxyFromEnvironment, TLSHandshakeTimeout: 10 * time.Second}
	}
	key, fresh, err := m.accountKey(s.directory)
	if err != nil {
		return nil, err
	}
	cl := &acme.Client{Key: key, DirectoryURL: s.directory, HTTPClient: hc, UserAgent: "bluegreen"}
	if _, err := cl.Discover(ctx); err != nil {
		return nil, fmt.Errorf("reading the ACME directory %s: %w", s.directory, err)
	}
	acct := &acme.Account{}
	if s.email != "" {
		acct.Contact = []string{"mailto:" + s.email}
	}
	if _, err := cl.Register(ctx, acct, acme.AcceptTOS); err != nil && !errors.Is(err, acme.ErrAccountAlreadyExists) {
		return nil, fmt.Errorf("registering the ACME account: %w", err)
	} else if fresh {
		m.log.Info("ACME account registered", "directory", s.directory)
	}
	return cl, nil
}

// accountKey reads the account key of a directory, or makes and stores one.
func (m *Manager) accountKey(directory string) (crypto.Signer, bool, error) {
	sum := sha256.Sum256([]byte(directory))
	path := filepath.Join(m.opts.Dir, "accounts", hex.EncodeToString(sum[:8])+".key")
	if data, err := os.ReadFile(path); err == nil {
		b, _ := pem.Decode(data)
		if b == nil {
			return nil, false, fmt.Errorf("%s holds no PEM key", path)
		}
		k, err := x509.ParseECPrivateKey(b.Bytes)
		if err != nil {
			return nil, false, fmt.Errorf("reading the ACME account key %s: %w", path, err)
		}
		return k, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, false, err
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, false, err
	}
	if err := writeAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return nil, false, fmt.Errorf("writing the ACME account key: %w", err)
	}
	// The directory's URL beside its key, for people looking at the data.
	_ = writeAtomic(path[:len(path)-len(".key")]+".url", []byte(directory+"\n"), 0o600)
	return k, true, nil
}

// rateLimited says whether err is a rate-limit answer, and how long the
// certificate authority asked to wait.
func rateLimited(err error) (time.Duration, bool) {
	if d, ok := acme.RateLimit(err); ok {
		return d, true
	}
	return 0, false
}
