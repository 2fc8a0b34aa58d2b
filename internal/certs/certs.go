// Package certs obtains and renews the certificates of apps whose
// router.tls asks for ACME (RFC 8555), with the HTTP-01 challenge.
//
// It runs in the server, not in the router: the server owns the data
// directory and the event log, and the router stays a data plane that never
// talks to a certificate authority. The router answers the challenges the
// server gives it through its admin API, and serves the files the server
// writes (one certificate per host, so that one host's failure costs no
// other host anything).
package certs

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"bluegreen/internal/router"
)

// DefaultDirectory is Let's Encrypt's production directory.
const DefaultDirectory = "https://acme-v02.api.letsencrypt.org/directory"

// Router is what the manager needs of the router: its table, the
// challenges it answers, and a reload of its certificate files.
type Router interface {
	Routes(ctx context.Context) (router.Config, uint64, error)
	SetChallenge(ctx context.Context, token, keyAuth string) error
	DeleteChallenge(ctx context.Context, token string) error
	ReloadTLS(ctx context.Context) error
}

// Event is something people should see in the app's events.
type Event struct {
	App, Kind, Message string
	Fields             map[string]any
}

// Options configure a Manager.
type Options struct {
	// Dir holds the accounts and the certificates (DATA/acme).
	Dir string
	// Directory, Email and CARoots are the server's defaults for what an
	// app's acme section leaves out.
	Directory, Email, CARoots string
	Router                    Router
	// Events receives issuances and failures; nil drops them.
	Events func(ctx context.Context, e Event)
	Logger *slog.Logger
	// Poll is how often the routing table is looked at (default 10s);
	// Kick looks at once.
	Poll time.Duration
	// OrderTimeout bounds one order, from the first request to the
	// certificate (default 2m).
	OrderTimeout time.Duration
	// RetryMin and RetryMax bound the wait after a failed order
	// (defaults 1m and 1h); it doubles from one failure to the next.
	RetryMin, RetryMax time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Manager keeps a valid certificate for every host that asks for one.
type Manager struct {
	opts Options
	log  *slog.Logger
	kick chan struct{}

	mu    sync.Mutex
	hosts map[string]*hostState
}

// HostStatus is where one host's certificate stands.
type HostStatus struct {
	App  string `json:"app"`
	Host string `json:"host"`
	// State is "valid", "ordering", "failed" or "waiting" (no order yet).
	State    string    `json:"state"`
	NotAfter time.Time `json:"not_after,omitzero"`
	RenewAt  time.Time `json:"renew_at,omitzero"`
	// Error is why the last order failed; NextTry is when the next one starts.
	Error     string    `json:"error,omitempty"`
	NextTry   time.Time `json:"next_try,omitzero"`
	Failures  int       `json:"failures,omitempty"`
	Directory string    `json:"directory"`
}

type hostState struct {
	HostStatus
	settings settings
	busy     bool
}

// settings are an app's ACME settings with the server's defaults filled in.
type settings struct{ directory, email, caRoots string }

// New returns a manager; Run makes it work.
func New(opts Options) (*Manager, error) {
	if opts.Dir == "" || opts.Router == nil {
		return nil, errors.New("certs: Dir and Router are required")
	}
	if opts.Directory == "" {
		opts.Directory = DefaultDirectory
	}
	if opts.Poll <= 0 {
		opts.Poll = 10 * time.Second
	}
	if opts.OrderTimeout <= 0 {
		opts.OrderTimeout = 2 * time.Minute
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = time.Minute
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Events == nil {
		opts.Events = func(context.Context, Event) {}
	}
	for _, d := range []string{opts.Dir, filepath.Join(opts.Dir, "certs"), filepath.Join(opts.Dir, "accounts")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("certs: %w", err)
		}
	}
	return &Manager{opts: opts, log: opts.Logger, kick: make(chan struct{}, 1), hosts: map[string]*hostState{}}, nil
}

// CertDir is where the certificates are, HOST.crt and HOST.key: the
// cert_dir of the router's apps.
func (m *Manager) CertDir() string { return filepath.Join(m.opts.Dir, "certs") }

// Kick has Run look at the routing table now.
func (m *Manager) Kick() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Run looks after the certificates until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-m.kick:
		}
		next := m.pass(ctx, &wg)
		timer.Reset(next)
	}
}

// pass starts what is due and returns how long to wait for the next pass.
func (m *Manager) pass(ctx context.Context, wg *sync.WaitGroup) time.Duration {
	wait := m.opts.Poll
	want, err := m.wanted(ctx)
	if err != nil {
		m.log.Warn("reading the routing table for certificates", "err", err)
		return wait
	}
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for host := range m.hosts {
		if _, ok := want[host]; !ok {
			delete(m.hosts, host)
		}
	}
	for _, host := range sortedKeys(want) {
		w := want[host]
		st := m.hosts[host]
		if st == nil || st.settings != w.settings {
			st = &hostState{HostStatus: HostStatus{App: w.app, Host: host, State: "waiting", Directory: w.settings.directory}, settings: w.settings}
			m.hosts[host] = st
		}
		st.App = w.app
		if st.busy {
			continue
		}
		if !st.NextTry.IsZero() && now.Before(st.NextTry) {
			wait = min(wait, st.NextTry.Sub(now))
			continue
		}
		if st.State == "valid" && now.Before(st.RenewAt) {
			wait = min(wait, st.RenewAt.Sub(now))
			continue
		}
		st.busy = true
		wg.Go(func() { m.obtain(ctx, host) })
	}
	return max(wait, time.Second)
}

type want struct {
	app      string
	settings settings
}

// wanted lists the hosts of the table whose certificates come from here.
func (m *Manager) wanted(ctx context.Context) (map[string]want, error) {
	cfg, _, err := m.opts.Router.Routes(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]want{}
	for _, name := range sortedKeys(cfg.Apps) {
		a := cfg.Apps[name]
		if a == nil {
			continue
		}
		// The test listener's own TLS is a candidate's that adds HTTPS.
		for _, t := range []*router.AppTLS{a.TestListenerTLS, a.TLS} {
			if t == nil || t.ACME == nil || t.CertDir != m.CertDir() {
				continue
			}
			s := settings{directory: m.opts.Directory, email: m.opts.Email, caRoots: m.opts.CARoots}
			if v := t.ACME.Directory; v != "" {
				s.directory = v
			}
			if v := t.ACME.Email; v != "" {
				s.email = v
			}
			if v := t.ACME.CARoots; v != "" {
				s.caRoots = v
			}
			app, _, _ := strings.Cut(name, ".") // a stack's routes are APP.SERVICE
			for _, h := range append(append([]string(nil), a.Hosts...), a.TestHosts...) {
				if h != "*" && !strings.HasPrefix(h, "*") {
					out[h] = want{app, s}
				}
			}
		}
	}
	return out, nil
}

// obtain makes sure host has a valid certificate: the one on disk when it
// is good for a while yet, else a new one.
func (m *Manager) obtain(ctx context.Context, host string) {
	m.mu.Lock()
	st := *m.hosts[host]
	m.mu.Unlock()
	now := m.opts.Now()
	leaf, err := readLeaf(m.certFile(host))
	if err == nil && leaf.VerifyHostname(host) == nil && now.Before(renewAt(leaf)) {
		m.settle(host, func(s *hostState) {
			s.State, s.NotAfter, s.RenewAt, s.Error, s.NextTry, s.Failures = "valid", leaf.NotAfter, renewAt(leaf), "", time.Time{}, 0
		})
		return
	}
	m.settle(host, func(s *hostState) { s.State = "ordering"; s.busy = true })
	octx, cancel := context.WithTimeout(ctx, m.opts.OrderTimeout)
	defer cancel()
	leaf, err = m.order(octx, host, st.settings)
	if ctx.Err() != nil {
		m.settle(host, func(s *hostState) { s.busy = false })
		return
	}
	if err != nil {
		m.failed(ctx, host, st.App, err)
		return
	}
	if err := m.opts.Router.ReloadTLS(ctx); err != nil {
		// The router reads its files again within a minute anyway.
		m.log.Warn("asking the router to reload certificates", "err", err)
	}
	m.settle(host, func(s *hostState) {
		s.State, s.NotAfter, s.RenewAt, s.Error, s.NextTry, s.Failures = "valid", leaf.NotAfter, renewAt(leaf), "", time.Time{}, 0
	})
	m.log.Info("certificate issued", "app", st.App, "host", host, "not_after", leaf.NotAfter)
	m.opts.Events(ctx, Event{App: st.App, Kind: "certificate_issued",
		Message: fmt.Sprintf("certificate for %s issued by %s, valid until %s", host, st.settings.directory, leaf.NotAfter.UTC().Format(time.RFC3339)),
		Fields:  map[string]any{"host": host, "not_after": leaf.NotAfter.UTC().Format(time.RFC3339)}})
	m.Kick()
}

// failed records a failed order and when the next one starts.
func (m *Manager) failed(ctx context.Context, host, app string, err error) {
	var next time.Time
	var failures int
	m.settle(host, func(s *hostState) {
		s.Failures++
		failures = s.Failures
		wait := m.opts.RetryMin << min(s.Failures-1, 20)
		if wait > m.opts.RetryMax || wait <= 0 {
			wait = m.opts.RetryMax
		}
		if d, ok := rateLimited(err); ok && d > wait {
			wait = d
		}
		next = m.opts.Now().Add(wait)
		s.State, s.Error, s.NextTry = "failed", err.Error(), next
	})
	kind := "certificate_failed"
	if _, ok := rateLimited(err); ok {
		kind = "certificate_rate_limited"
	}
	m.log.Warn("certificate order failed", "app", app, "host", host, "err", err, "next_try", next)
	m.opts.Events(ctx, Event{App: app, Kind: kind,
		Message: fmt.Sprintf("certificate for %s: %v; next try at %s", host, err, next.UTC().Format(time.RFC3339)),
		Fields:  map[string]any{"host": host, "error": err.Error(), "failures": failures, "next_try": next.UTC().Format(time.RFC3339)}})
}

func (m *Manager) settle(host string, f func(*hostState)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.hosts[host]
	if s == nil {
		return // no longer wanted
	}
	f(s)
	if s.State != "ordering" {
		s.busy = false
	}
}

// Status lists the hosts of app ("" for every app), by name.
func (m *Manager) Status(app string) []HostStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []HostStatus
	for _, h := range sortedKeys(m.hosts) {
		if s := m.hosts[h]; app == "" || s.App == app {
			out = append(out, s.HostStatus)
		}
	}
	return out
}

// renewAt is when a certificate is renewed: once two thirds of its life
// have passed (30 days before the end of a 90-day certificate).
func renewAt(c *x509.Certificate) time.Time {
	life := c.NotAfter.Sub(c.NotBefore)
	return c.NotAfter.Add(-life / 3)
}

func (m *Manager) certFile(host string) string { return filepath.Join(m.CertDir(), host+".crt") }
func (m *Manager) keyFile(host string) string  { return filepath.Join(m.CertDir(), host+".key") }

func readLeaf(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return x509.ParseCertificate(b.Bytes)
}

// writeAtomic replaces path with data in one step: a reader sees the old
// file or the new one, and a crash leaves one or the other.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
