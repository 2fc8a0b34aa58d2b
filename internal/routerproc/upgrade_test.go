package routerproc

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"bluegreen/internal/router"
	"bluegreen/internal/testwait"
	"bluegreen/internal/testws"
)

// TestUpgradeHandsOverListenersUnderLoad replaces the router process while
// clients open new connections as fast as they can on a plain and a TLS
// listener: none is refused and none fails. A slow request on each and a
// WebSocket opened before the upgrade finish on the old process, which exits
// once they are done; the supervisor runs the new one.
func TestUpgradeHandsOverListenersUnderLoad(t *testing.T) {
	dir := stateDir(t)
	s, logs := start(t, dir, nil)
	slowIn := make(chan struct{}, 2)
	release := make(chan struct{})
	target := upgradeBackend(t, slowIn, release)
	plain, secure := freeAddr(t), freeAddr(t)
	certFile, keyFile, pool := selfSignedFiles(t, dir)
	cfg := oneApp(plain, target)
	cfg.Apps["secure"] = &router.AppConfig{Production: secure, ProductionTLS: &router.TLSFiles{CertFile: certFile, KeyFile: keyFile},
		Fleets: map[string]*router.FleetConfig{"blue": {Weight: 100, Targets: []string{target}}}}
	ctx := context.Background()
	if _, err := s.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	old := s.Pid()
	tlsCfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}

	// Work that must finish on the old process.
	ws, wsConn := testws.Dial(t, plain)
	testws.Echo(t, ws, "before")
	slowPlain := startSlow(t, plain, nil)
	slowTLS := startSlow(t, secure, tlsCfg)
	for range 2 {
		<-slowIn
	}
	for name, c := range map[string]net.Conn{"websocket": wsConn, "slow request": slowPlain.raw, "slow TLS request": slowTLS.raw} {
		if pid := servedBy(t, c, old); pid != old {
			t.Fatalf("%s is served by pid %d before the upgrade, want the router %d", name, pid, old)
		}
	}

	h := hammer(t, []string{"http://" + plain + "/", "https://" + secure + "/"}, tlsCfg)
	testwait.For(t, 10*time.Second, "requests through both listeners before the upgrade", func() bool { return h.ok.Load() > 200 })

	rep, err := s.Upgrade(ctx)
	if err != nil {
		t.Fatalf("upgrade: %v\nsupervisor log:\n%s", err, logs)
	}
	if rep.OldPid != old || rep.Pid == old || s.Pid() != rep.Pid || readPidFile(filepath.Join(dir, PidFile)) != rep.Pid {
		t.Fatalf("upgrade: %+v, supervisor pid %d, router.pid %d; want the old %d replaced", rep, s.Pid(), readPidFile(filepath.Join(dir, PidFile)), old)
	}
	after := h.ok.Load()
	testwait.For(t, 10*time.Second, "requests through both listeners after the upgrade", func() bool { return h.ok.Load() > after+200 })
	for _, url := range []string{plain, secure} {
		c := keptConn(t, url, map[string]*tls.Config{plain: nil, secure: tlsCfg}[url])
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("a request on a new connection to %s after the upgrade: %v", url, err)
		}
		if pid := servedBy(t, c.raw, old, rep.Pid); pid != rep.Pid {
			t.Fatalf("a new connection to %s is served by pid %d, want the new router %d", url, pid, rep.Pid)
		}
		c.Close()
	}
	if gone(old) {
		t.Fatalf("the old router %d exited with a WebSocket and slow requests open", old)
	}
	testws.Echo(t, ws, "during the drain")
	if pid := servedBy(t, wsConn, old, rep.Pid); pid != old {
		t.Fatalf("the WebSocket is served by pid %d after the upgrade, want the old router %d", pid, old)
	}
	close(release)
	for _, sl := range []*slowReq{slowPlain, slowTLS} {
		if body, err := sl.wait(); err != nil || body != "slow" {
			t.Fatalf("slow request across the upgrade: %q %v", body, err)
		}
	}
	ws.Close(websocket.StatusNormalClosure, "done")
	testwait.For(t, 20*time.Second, "the old router to exit after its drain", func() bool { return gone(old) })
	sent, refused, failed := h.stop()
	t.Logf("upgrade took %s; %d requests (most on a new connection each), %d refused, %d failed", rep.Took, sent, refused, failed)
	if refused != 0 || failed != 0 {
		t.Fatalf("%d of %d requests refused and %d failed across the upgrade; first errors: %v", refused, sent, failed, h.errors())
	}
	mustFetch(t, "http://"+plain+"/", "pong")
}

// TestUpgradeWithoutRouterFails says what is wrong when no router runs.
func TestUpgradeWithoutRouterFails(t *testing.T) {
	dir := stateDir(t)
	s, err := newSupervisor(Options{Dir: dir, Command: []string{bluegreenBin, "router"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Upgrade(context.Background()); err == nil || !strings.Contains(err.Error(), "none answers on") {
		t.Fatalf("upgrade with no router running: %v, want an error that none answers", err)
	}
}

// TestStartUpgradesARouterOfAnotherBuild adopts a router started from
// another copy of the program (another build, as after an upgrade of
// bluegreen) and hands its listeners to a router of the supervisor's own.
func TestStartUpgradesARouterOfAnotherBuild(t *testing.T) {
	dir := stateDir(t)
	other := filepath.Join(t.TempDir(), "bluegreen-old")
	copyExecutable(t, bluegreenBin, other)
	s, _ := start(t, dir, func(o *Options) { o.Command = []string{other, "router"}; o.WatchInterval = -1 })
	prod := freeAddr(t)
	if _, err := s.Apply(context.Background(), oneApp(prod, backend(t, "blue", nil))); err != nil {
		t.Fatal(err)
	}
	old := s.Pid()
	s2, logs := start(t, dir, func(o *Options) { o.UpgradeAdopted = true; o.WatchInterval = -1 })
	if s2.Pid() == old || s2.Pid() == 0 {
		t.Fatalf("the supervisor runs pid %d, want a new router in place of %d\n%s", s2.Pid(), old, logs)
	}
	testwait.For(t, 20*time.Second, "the old router to exit", func() bool { return gone(old) })
	mustFetch(t, "http://"+prod+"/", "blue")
	v, err := s2.Client().Version(context.Background())
	want, _ := router.Build(bluegreenBin)
	if err != nil || v.Build != want || v.Pid != s2.Pid() {
		t.Fatalf("version after the upgrade: %+v %v, want build %s of pid %d", v, err, want, s2.Pid())
	}
}

func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	// A byte appended makes another build of the same program.
	if err := os.WriteFile(to, append(b, 0), 0o755); err != nil {
		t.Fatal(err)
	}
}

// upgradeBackend answers "pong", holds /slow until release (telling slowIn
// it arrived), and echoes WebSocket messages on /ws.
func upgradeBackend(t *testing.T, slowIn chan<- struct{}, release <-chan struct{}) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			slowIn <- struct{}{}
			<-release
			io.WriteString(w, "slow")
		case "/ws":
			testws.EchoServer(w, r)
		default:
			io.WriteString(w, "pong")
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// slowReq is a request sent on a connection of its own, answered later.
type slowReq struct {
	raw  net.Conn // the TCP connection, under TLS when there is one
	done chan struct{}
	body string
	err  error
}

func (s *slowReq) wait() (string, error) {
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		return "", errors.New("no answer within 20s")
	}
	return s.body, s.err
}

func startSlow(t *testing.T, addr string, tlsCfg *tls.Config) *slowReq {
	t.Helper()
	c := keptConn(t, addr, tlsCfg)
	s := &slowReq{raw: c.raw, done: make(chan struct{})}
	if _, err := io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.done)
		defer c.Close()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			s.err = err
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		s.body, s.err = string(b), err
		if err == nil && resp.StatusCode != 200 {
			s.err = fmt.Errorf("status %d", resp.StatusCode)
		}
	}()
	return s
}

// rawConn is a client connection and the TCP connection under it.
type rawConn struct {
	net.Conn
	raw net.Conn
}

// keptConn opens a connection (and its TLS session) to addr.
func keptConn(t *testing.T, addr string, tlsCfg *tls.Config) rawConn {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := rawConn{Conn: raw, raw: raw}
	if tlsCfg != nil {
		tc := tls.Client(raw, tlsCfg)
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS handshake with %s: %v", addr, err)
		}
		c.Conn = tc
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// servedBy returns which of pids holds the router's side of the client
// connection c (0 when none does), from the kernel's socket table.
func servedBy(t *testing.T, c net.Conn, pids ...int) int {
	t.Helper()
	local, remote := c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	// The router's side: its local address is our remote one.
	want := hexAddr(remote) + " " + hexAddr(local)
	inode := ""
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 9 && f[1]+" "+f[2] == want {
			inode = f[9]
		}
	}
	if inode == "" {
		t.Fatalf("no socket of the router for the connection %s → %s", local, remote)
	}
	for _, pid := range pids {
		fds, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
		for _, fd := range fds {
			if l, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name()); l == "socket:["+inode+"]" {
				return pid
			}
		}
	}
	return 0
}

// hexAddr writes an IPv4 address as /proc/net/tcp does.
func hexAddr(a *net.TCPAddr) string {
	ip := a.IP.To4()
	return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], a.Port)
}

// load sends requests on new connections from several goroutines until
// stopped, and counts how they end.
type load struct {
	ok, refused, failed atomic.Int64
	quit                chan struct{}
	once                sync.Once
	wg                  sync.WaitGroup
	mu                  sync.Mutex
	errs                []string
}

// hammer loads each URL from two goroutines that open a connection per
// request and from one that keeps its connection (HTTP/2 over TLS).
func hammer(t *testing.T, urls []string, tlsCfg *tls.Config) *load {
	l := &load{quit: make(chan struct{})}
	const maxRequests = 200000
	var sent atomic.Int64
	deadline := time.Now().Add(60 * time.Second)
	for i := range 3 * len(urls) {
		url := urls[i%len(urls)]
		// A transport of its own each: one that tries HTTP/2 changes its
		// TLS configuration (its ALPN protocols).
		tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: tlsCfg.Clone()}
		if i >= 2*len(urls) {
			tr = &http.Transport{TLSClientConfig: tlsCfg.Clone(), ForceAttemptHTTP2: true}
		}
		l.wg.Go(func() {
			c := &http.Client{Timeout: 10 * time.Second, Transport: tr}
			for sent.Add(1) <= maxRequests && time.Now().Before(deadline) {
				select {
				case <-l.quit:
					return
				default:
				}
				l.one(c, url)
			}
		})
	}
	t.Cleanup(func() { l.stop() })
	return l
}

func (l *load) one(c *http.Client, url string) {
	resp, err := c.Get(url)
	if err == nil {
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil && resp.StatusCode == 200 && string(b) == "pong" {
			l.ok.Add(1)
			return
		}
		err = fmt.Errorf("status %d %q %v", resp.StatusCode, b, rerr)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		l.refused.Add(1)
	} else {
		l.failed.Add(1)
	}
	l.mu.Lock()
	if len(l.errs) < 5 {
		l.errs = append(l.errs, url+": "+err.Error())
	}
	l.mu.Unlock()
}

func (l *load) stop() (sent, refused, failed int64) {
	l.once.Do(func() { close(l.quit) })
	l.wg.Wait()
	return l.ok.Load() + l.refused.Load() + l.failed.Load(), l.refused.Load(), l.failed.Load()
}

func (l *load) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errs...)
}

// selfSignedFiles writes a certificate for localhost and 127.0.0.1 and its
// key into dir, and returns a pool that trusts it.
func selfSignedFiles(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestRepeatedUpgradesUnderLoad upgrades the router ten times in a row
// under load on new connections: none is refused, no request fails, and
// every replaced router exits.
func TestRepeatedUpgradesUnderLoad(t *testing.T) {
	dir := stateDir(t)
	s, logs := start(t, dir, func(o *Options) { o.WatchInterval = 50 * time.Millisecond })
	target := upgradeBackend(t, nil, nil)
	plain, secure := freeAddr(t), freeAddr(t)
	certFile, keyFile, pool := selfSignedFiles(t, dir)
	cfg := oneApp(plain, target)
	cfg.Apps["secure"] = &router.AppConfig{Production: secure, ProductionTLS: &router.TLSFiles{CertFile: certFile, KeyFile: keyFile},
		Fleets: map[string]*router.FleetConfig{"blue": {Weight: 100, Targets: []string{target}}}}
	if _, err := s.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	h := hammer(t, []string{"http://" + plain + "/", "https://" + secure + "/"}, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	var replaced []int
	var took time.Duration
	for i := range 10 {
		mark := h.ok.Load()
		testwait.For(t, 10*time.Second, "requests through the router", func() bool { return h.ok.Load() > mark+100 })
		rep, err := s.Upgrade(context.Background())
		if err != nil {
			t.Fatalf("upgrade %d: %v\nsupervisor log:\n%s", i+1, err, logs)
		}
		replaced = append(replaced, rep.OldPid)
		took += rep.Took
	}
	mark := h.ok.Load()
	testwait.For(t, 10*time.Second, "requests through the last router", func() bool { return h.ok.Load() > mark+100 })
	sent, refused, failed := h.stop()
	t.Logf("10 upgrades, %s each on average; %d requests, %d refused, %d failed", took/10, sent, refused, failed)
	if refused != 0 || failed != 0 {
		t.Fatalf("%d of %d requests refused and %d failed across ten upgrades; first errors: %v", refused, sent, failed, h.errors())
	}
	testwait.For(t, 20*time.Second, "every replaced router to exit", func() bool {
		for _, pid := range replaced {
			if !gone(pid) {
				return false
			}
		}
		return true
	})
	if strings.Contains(logs.String(), "router is gone") {
		t.Fatalf("the watch loop took an upgrade for a dead router:\n%s", logs)
	}
}

// TestUpgradeThatFailsLeavesTheRouterServing runs a "new router" that exits
// at once: the upgrade fails saying so, and the running router keeps its
// pid, its listeners and router.pid.
func TestUpgradeThatFailsLeavesTheRouterServing(t *testing.T) {
	dir := stateDir(t)
	s, _ := start(t, dir, func(o *Options) { o.WatchInterval = -1 })
	prod := freeAddr(t)
	if _, err := s.Apply(context.Background(), oneApp(prod, backend(t, "blue", nil))); err != nil {
		t.Fatal(err)
	}
	old := s.Pid()
	s.opts.Command = []string{"/bin/false"}
	_, err := s.Upgrade(context.Background())
	if err == nil || !strings.Contains(err.Error(), "exited before it took over") || !strings.Contains(err.Error(), fmt.Sprintf("the router (pid %d) keeps serving", old)) {
		t.Fatalf("upgrade to a program that exits: %v", err)
	}
	if s.Pid() != old || readPidFile(filepath.Join(dir, PidFile)) != old || gone(old) {
		t.Fatalf("after the failed upgrade: supervisor pid %d, router.pid %d, want the router %d still running", s.Pid(), readPidFile(filepath.Join(dir, PidFile)), old)
	}
	mustFetch(t, "http://"+prod+"/", "blue")
	if _, err := s.Apply(context.Background(), oneApp(prod, backend(t, "green", nil))); err != nil {
		t.Fatalf("a table after the failed upgrade: %v", err)
	}
	mustFetch(t, "http://"+prod+"/", "green")
}
