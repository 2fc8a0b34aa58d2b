package router

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func adminRouter(t *testing.T, token string) (*Router, string, *fleetBackend, *fleetBackend) {
	t.Helper()
	blue, green := newBackend(t, "blue"), newBackend(t, "green")
	cfg := twoFleets(blue.addr(), green.addr(), 100, 0)
	cfg.AdminToken = token
	r := startRouter(t, cfg)
	addr, err := r.ListenAdmin("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return r, "http://" + addr.String(), blue, green
}

func call(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

func TestAdminPutRoutesIsAtomicAndRejectsBadTables(t *testing.T) {
	r, admin, _, _ := adminRouter(t, "")
	c := &http.Client{}
	if _, got := get(t, c, prodURL(r)); got != "blue" {
		t.Fatalf("before: %s", got)
	}
	var view RoutesView
	code, body := call(t, "GET", admin+"/routes", "", "")
	if code != 200 || json.Unmarshal([]byte(body), &view) != nil {
		t.Fatalf("GET /routes %d %s", code, body)
	}
	if len(view.Targets) != 2 || !view.Targets[0].Healthy {
		t.Fatalf("targets %+v", view.Targets)
	}
	view.Table.Apps["shop"].Fleets["blue"].Weight = 0
	view.Table.Apps["shop"].Fleets["green"].Weight = 100
	tbl, _ := json.Marshal(view.Table)
	code, body = call(t, "PUT", admin+"/routes", "", string(tbl))
	if code != 200 || !strings.Contains(body, `"generation": 2`) {
		t.Fatalf("PUT /routes %d %s", code, body)
	}
	if _, got := get(t, c, prodURL(r)); got != "green" {
		t.Fatalf("after PUT: %s", got)
	}

	// An invalid table names every problem and changes nothing.
	view.Table.Apps["shop"].Fleets["green"].Weight = 250
	view.Table.Apps["shop"].TestFleet = "purple"
	tbl, _ = json.Marshal(view.Table)
	code, body = call(t, "PUT", admin+"/routes", "", string(tbl))
	if code != 400 || !strings.Contains(body, "apps.shop.fleets.green.weight: 250 is out of range 0..100") ||
		!strings.Contains(body, `apps.shop.test_fleet: no fleet named \"purple\"`) {
		t.Fatalf("bad PUT: %d %s", code, body)
	}
	code, body = call(t, "PUT", admin+"/routes", "", `{"apps": {"shop": {"fleets": {}, "bogus": 1}}}`)
	if code != 400 || !strings.Contains(body, `unknown field \"bogus\"`) {
		t.Fatalf("unknown field: %d %s", code, body)
	}
	if r.Generation() != 2 {
		t.Fatalf("a rejected table changed the generation to %d", r.Generation())
	}
	if _, got := get(t, c, prodURL(r)); got != "green" {
		t.Fatalf("after rejected PUT: %s", got)
	}

	// A listener that cannot be opened rejects the table too.
	busy, _ := net.Listen("tcp", "127.0.0.1:0")
	defer busy.Close()
	cfg := r.Config()
	cfg.Apps["shop"].Test = busy.Addr().String()
	if _, err := r.Apply(cfg); err == nil || !strings.Contains(err.Error(), "opening listener") {
		t.Fatalf("busy listener: %v", err)
	}
	if _, got := get(t, c, testURL(r)); got != "green" {
		t.Fatalf("test listener after rejected table: %s", got)
	}
}

func TestAdminTokenIsRequired(t *testing.T) {
	r, admin, _, _ := adminRouter(t, "s3cret")
	for _, path := range []string{"/routes", "/stats", "/metrics", "/healthz"} {
		if code, body := call(t, "GET", admin+path, "", ""); code != 401 || !strings.Contains(body, "Bearer") {
			t.Errorf("GET %s without token: %d %s", path, code, body)
		}
		if code, _ := call(t, "GET", admin+path, "wrong", ""); code != 401 {
			t.Errorf("GET %s with a wrong token: %d", path, code)
		}
		if code, _ := call(t, "GET", admin+path, "s3cret", ""); code != 200 {
			t.Errorf("GET %s with the token: %d", path, code)
		}
	}
	code, body := call(t, "GET", admin+"/routes", "s3cret", "")
	if code != 200 || strings.Contains(body, "s3cret") {
		t.Fatalf("GET /routes shows the token: %s", body)
	}
	// A pushed table cannot change or drop the token.
	tbl, _ := json.Marshal(r.Config())
	if code, _ := call(t, "PUT", admin+"/routes", "s3cret", strings.Replace(string(tbl), "s3cret", "other", 1)); code != 400 {
		t.Fatalf("token change through PUT: %d", code)
	}
	cfg := r.Config()
	cfg.AdminToken = ""
	tbl, _ = json.Marshal(cfg)
	if code, _ := call(t, "PUT", admin+"/routes", "s3cret", string(tbl)); code != 200 {
		t.Fatalf("PUT without restating the token: %d", code)
	}
	if code, _ := call(t, "GET", admin+"/stats", "", ""); code != 401 {
		t.Fatal("PUT without the token field turned auth off")
	}
}

func TestAdminOnUnixSocketAndLoopbackOnly(t *testing.T) {
	r := startRouter(t, oneFleet(newBackend(t, "blue").addr()))
	if _, err := r.ListenAdmin("0.0.0.0:0"); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("non-loopback admin: %v", err)
	}
	sock := filepath.Join(t.TempDir(), "admin.sock")
	if _, err := r.ListenAdmin("unix:" + sock); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(sock)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v %v", st.Mode(), err)
	}
	uc := &http.Client{Transport: &http.Transport{Dial: func(_, _ string) (net.Conn, error) { return net.Dial("unix", sock) }}}
	resp, err := uc.Get("http://admin/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("admin over unix socket: %v", err)
	}
	resp.Body.Close()
}

func TestStatsAndPrometheus(t *testing.T) {
	r, admin, _, _ := adminRouter(t, "")
	cfg := r.Config()
	cfg.Apps["shop"].Fleets["blue"].Revision = "7"
	if _, err := r.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{}
	for range 25 {
		get(t, c, prodURL(r))
	}
	get(t, c, prodURL(r), "Host", "nowhere") // still routed by "*"
	s := r.Stats()
	blue := s.Apps["shop"].Fleets["blue"]
	w := blue.Windows["10s"]
	if w.Requests != 26 || w.ByClass["2xx"] != 26 || w.P99 <= 0 || w.P50 > w.P99 || blue.Revision != "7" {
		t.Fatalf("blue 10s window %+v revision %q", w, blue.Revision)
	}
	if blue.Totals.Requests != 26 || len(blue.Targets) != 1 || blue.Targets[0].Totals.Requests != 26 {
		t.Fatalf("totals %+v targets %+v", blue.Totals, blue.Targets)
	}
	code, body := call(t, "GET", admin+"/metrics", "", "")
	for _, want := range []string{
		`bluegreen_router_requests_total{app="shop",class="2xx",fleet="blue",revision="7",target="` + blue.Targets[0].Address + `"} 26`,
		`bluegreen_router_request_duration_seconds_count{app="shop",fleet="blue",revision="7"`,
		`bluegreen_router_fleet_weight{app="shop",fleet="green",revision=""} 0`,
		`bluegreen_router_target_healthy{app="shop",fleet="blue",revision="7"`,
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	code, body = call(t, "GET", admin+"/stats", "", "")
	if code != 200 || !strings.Contains(body, `"p99_seconds"`) {
		t.Fatalf("/stats %d", code)
	}
}

func TestQuantilesFromBuckets(t *testing.T) {
	var m metrics
	now := time.Now()
	for i := 1; i <= 1000; i++ {
		m.record(now, 200, time.Duration(i)*time.Millisecond, 0, 0)
	}
	w := m.window(now, 10*time.Second)
	for _, tc := range []struct {
		name      string
		got, want float64
	}{{"p50", w.P50, 0.5}, {"p90", w.P90, 0.9}, {"p95", w.P95, 0.95}, {"p99", w.P99, 0.99}} {
		if tc.got < tc.want*0.85 || tc.got > tc.want*1.15 {
			t.Errorf("%s = %.3fs, want %.3fs ±15%%", tc.name, tc.got, tc.want)
		}
	}
	// Old slots fall out of the window.
	later := now.Add(11 * time.Second)
	if got := m.window(later, 10*time.Second).Requests; got != 0 {
		t.Errorf("10s window 11s later holds %d requests", got)
	}
	if got := m.window(later, time.Minute).Requests; got != 1000 {
		t.Errorf("1m window holds %d requests", got)
	}
}

func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeSelfSigned(t, dir)
	be := newBackend(t, "blue")
	cfg := oneFleet(be.addr())
	cfg.ProductionTLS = &TLSFiles{CertFile: cert, KeyFile: key}
	r := startRouter(t, cfg)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Get("https://" + r.Config().Production + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "blue" || resp.TLS == nil {
		t.Fatalf("over TLS: %q", b)
	}
	bad := r.Config()
	bad.ProductionTLS = &TLSFiles{CertFile: filepath.Join(dir, "missing.pem"), KeyFile: key}
	if _, err := r.Apply(bad); err == nil || !strings.Contains(err.Error(), "loading certificate") {
		t.Fatalf("missing certificate: %v", err)
	}
}

func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}
