package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"bluegreen/internal/freeport"
	"bluegreen/internal/router"
	"bluegreen/internal/testacme"
	"bluegreen/internal/testwait"
)

// inProcess is the Router interface on a router in this process.
type inProcess struct{ r *router.Router }

func (p inProcess) Routes(context.Context) (router.Config, uint64, error) {
	return *p.r.Config(), p.r.Generation(), nil
}
func (p inProcess) SetChallenge(_ context.Context, token, keyAuth string) error {
	p.r.SetChallenge(token, keyAuth)
	return nil
}
func (p inProcess) DeleteChallenge(_ context.Context, token string) error {
	p.r.DeleteChallenge(token)
	return nil
}
func (p inProcess) ReloadTLS(context.Context) error { p.r.ReloadTLS(); return nil }

type events struct {
	mu  sync.Mutex
	all []Event
}

func (e *events) add(_ context.Context, ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

func (e *events) kinds(host string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.all {
		if ev.Fields["host"] == host {
			out = append(out, ev.Kind)
		}
	}
	return out
}

type rig struct {
	pebble      *testacme.Pebble
	r           *router.Router
	prod, plain string
	dataDir     string
}

// newRig runs Pebble and a router with two apps asking for ACME: one
// whose host resolves, one whose host does not.
func newRig(t *testing.T, validity time.Duration) *rig {
	prod, plain := freeport.Must(t), freeport.Must(t)
	_, port, _ := net.SplitHostPort(plain)
	p, _ := strconv.Atoi(port)
	pebble := testacme.Start(t, testacme.Options{HTTPPort: p, Validity: validity, Hosts: []string{"shop.test"}})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "shop") }))
	t.Cleanup(be.Close)
	r := router.New(router.Options{})
	t.Cleanup(func() { r.Shutdown(context.Background()) })
	return &rig{pebble: pebble, r: r, prod: prod, plain: plain, dataDir: t.TempDir()}
}

func (g *rig) apply(t *testing.T, certDir, backend string) {
	t.Helper()
	acme := &router.ACMESettings{Directory: g.pebble.Directory, CARoots: g.pebble.CARoots}
	app := func(host string) *router.AppConfig {
		return &router.AppConfig{Hosts: []string{host}, TLS: &router.AppTLS{CertDir: certDir, HTTP: g.plain, ACME: acme},
			Fleets: map[string]*router.FleetConfig{"blue": {Weight: 100, Targets: []string{backend}}}}
	}
	if _, err := g.r.Apply(&router.Config{Production: g.prod, Apps: map[string]*router.AppConfig{
		"shop": app("shop.test"), "lost": app("lost.test")}}); err != nil {
		t.Fatal(err)
	}
}

func (g *rig) manager(t *testing.T, ev *events) *Manager {
	m, err := New(Options{Dir: g.dataDir, Router: inProcess{g.r}, Events: ev.add, Poll: 200 * time.Millisecond,
		RetryMin: time.Hour, OrderTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return m
}

func (g *rig) get(t *testing.T, roots *x509.CertPool, host string) (*x509.Certificate, error) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: host},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, g.prod)
		}}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + host + "/")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); string(b) != "shop" {
		t.Fatalf("https://%s/: %q", host, b)
	}
	return resp.TLS.PeerCertificates[0], nil
}

func status(m *Manager, host string) HostStatus {
	for _, s := range m.Status("") {
		if s.Host == host {
			return s
		}
	}
	return HostStatus{}
}

func TestIssueRestartRenewAndOneHostFailing(t *testing.T) {
	g := newRig(t, 20*time.Second)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "shop") }))
	t.Cleanup(be.Close)
	ev := &events{}
	m := g.manager(t, ev)
	g.apply(t, m.CertDir(), strings.TrimPrefix(be.URL, "http://"))
	m.Kick()

	// First issuance: a client that trusts Pebble's root verifies the certificate.
	testwait.ForOr(t, 30*time.Second, "a certificate for shop.test", func() bool { return status(m, "shop.test").State == "valid" },
		func() string { return g.pebble.Log() })
	roots := g.pebble.Roots(t)
	first, err := g.get(t, roots, "shop.test")
	if err != nil {
		t.Fatalf("https with the issued certificate: %v", err)
	}
	// The host that does not resolve fails alone, visibly.
	testwait.For(t, 30*time.Second, "lost.test to fail", func() bool { return status(m, "lost.test").State == "failed" })
	if s := status(m, "lost.test"); !strings.Contains(s.Error, "lost.test") || s.NextTry.IsZero() {
		t.Fatalf("failed host status: %+v", s)
	}
	if k := ev.kinds("lost.test"); len(k) == 0 || k[0] != "certificate_failed" {
		t.Fatalf("events of lost.test: %v", k)
	}
	if _, err := g.get(t, roots, "lost.test"); err == nil {
		t.Fatal("lost.test served without a certificate")
	}
	if _, err := g.get(t, roots, "shop.test"); err != nil {
		t.Fatalf("shop.test while lost.test fails: %v", err)
	}

	// Renewal: two thirds into its life, without a restart or a push.
	testwait.For(t, 40*time.Second, "a renewed certificate", func() bool {
		c, err := g.get(t, roots, "shop.test")
		return err == nil && c.SerialNumber.Cmp(first.SerialNumber) != 0
	})
	if k := ev.kinds("shop.test"); len(k) < 2 {
		t.Fatalf("issuance events: %v", k)
	}
}

func TestWarmStoreOrdersNothing(t *testing.T) {
	g := newRig(t, 0)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "shop") }))
	t.Cleanup(be.Close)
	ev := &events{}
	ctx, cancel := context.WithCancel(context.Background())
	m, err := New(Options{Dir: g.dataDir, Router: inProcess{g.r}, Events: ev.add, Poll: 200 * time.Millisecond, RetryMin: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	g.apply(t, m.CertDir(), strings.TrimPrefix(be.URL, "http://"))
	m.Kick()
	testwait.ForOr(t, 30*time.Second, "a certificate", func() bool { return status(m, "shop.test").State == "valid" },
		func() string { return status(m, "shop.test").Error })
	cancel()
	<-done

	// A new manager on the same directory, as after a restart of the server.
	ev2 := &events{}
	m2 := g.manager(t, ev2)
	testwait.For(t, 10*time.Second, "the stored certificate to be taken", func() bool { return status(m2, "shop.test").State == "valid" })
	if k := ev2.kinds("shop.test"); len(k) != 0 {
		t.Fatalf("a warm store ordered again: %v", k)
	}
	if _, err := g.get(t, g.pebble.Roots(t), "shop.test"); err != nil {
		t.Fatal(err)
	}
}

func TestDirectoryThatDoesNotAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepted, never answered
		}
	}()
	r := router.New(router.Options{})
	t.Cleanup(func() { r.Shutdown(context.Background()) })
	ev := &events{}
	dir := t.TempDir()
	m, err := New(Options{Dir: dir, Router: inProcess{r}, Events: ev.add, Poll: 100 * time.Millisecond,
		RetryMin: time.Hour, OrderTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(&router.Config{Production: freeport.Must(t), Apps: map[string]*router.AppConfig{"shop": {
		Hosts: []string{"shop.test"}, TLS: &router.AppTLS{CertDir: m.CertDir(), HTTP: freeport.Must(t),
			ACME: &router.ACMESettings{Directory: "https://" + ln.Addr().String() + "/dir"}},
		Fleets: map[string]*router.FleetConfig{"blue": {Weight: 100, Targets: []string{"127.0.0.1:9"}}}}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	testwait.For(t, 20*time.Second, "the order to fail", func() bool { return status(m, "shop.test").State == "failed" })
	if s := status(m, "shop.test"); !strings.Contains(s.Error, "reading the ACME directory https://"+ln.Addr().String()) {
		t.Fatalf("error: %q", s.Error)
	}
}
