package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"bluegreen/internal/testwait"
)

// A router whose HTTPS port gets garbage, ClientHellos that never end and
// handshakes for a host whose certificate expired keeps serving every
// other route through it all, says what it sees (one warning in its log,
// its handshake counters in its metrics), and its memory stays flat: after
// round upon round of the same flood, its peak resident memory is where
// the first round left it.
func TestTLSFloodInFlatMemory(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	good, goodKey := writeCert(t, dir, "good", "good.test", now.Add(-time.Hour), now.Add(time.Hour))
	expired, expiredKey := writeCert(t, dir, "expired", "expired.test", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	be := serveFleet(t, "blue", nil)
	edge, edgeTest := freeAddr(t), freeAddr(t)
	app := func(name, host, cert, key string) string {
		return fmt.Sprintf("  %s:\n    hosts: [%s]\n    production: %s\n    test: %s\n    tls: { cert_file: %q, key_file: %q }\n    fleets:\n      blue: { weight: 100, targets: [%q] }\n",
			name, host, edge, edgeTest, cert, key, be)
	}
	p := startRouterProc(t, fmt.Sprintf("  plain:\n    fleets:\n      blue: { weight: 100, targets: [%q] }\n", be)+
		app("good", "good.test", good, goodKey)+app("expired", "expired.test", expired, expiredKey))
	pem, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	// One client of each kind, kept for the whole test: what it holds
	// open is not the flood's.
	h1, h2, plain := httpsClient(roots, edge, false), httpsClient(roots, edge, true), httpsClient(nil, p.prod, false)
	clients := map[string]func() (string, error){
		"https h1": func() (string, error) { return fetch(h1, "https://good.test/") },
		"https h2": func() (string, error) { return fetch(h2, "https://good.test/") },
		"plain":    func() (string, error) { return fetch(plain, "http://plain.test/") },
	}
	served := func(when string) {
		t.Helper()
		for name, get := range clients {
			if body, err := get(); err != nil || body != "blue" {
				t.Fatalf("%s, %s: %q, %v", when, name, body, err)
			}
		}
	}
	served("before the flood")
	before := goroutines(t, p)

	const rounds, garbage, held, refused = 10, 200, 300, 40
	var first, last int
	for round := 1; round <= rounds; round++ {
		var conns []net.Conn
		for i := range garbage + held {
			c, err := net.Dial("tcp", edge)
			if err != nil {
				t.Fatalf("round %d: dialing the HTTPS port: %v", round, err)
			}
			conns = append(conns, c)
			if i < garbage {
				fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: good.test\r\n\r\n")
			} else {
				c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}) // a ClientHello that never ends
			}
		}
		// Handshakes for the host whose certificate expired, and for a
		// host nobody serves: each fails alone.
		var wg sync.WaitGroup
		for i := range refused {
			wg.Go(func() {
				host := "expired.test"
				if i%2 == 1 {
					host = "nobody.test"
				}
				c, err := tls.Dial("tcp", edge, &tls.Config{ServerName: host, InsecureSkipVerify: true})
				if err == nil {
					c.Close()
					t.Errorf("round %d: a handshake for %s succeeded", round, host)
				}
			})
		}
		wg.Wait()
		served(fmt.Sprintf("round %d, during the flood", round))
		for _, c := range conns {
			c.Close()
		}
		hwm := peakRSS(t, p.cmd.Process.Pid)
		if round == 1 {
			first = hwm
		}
		last = hwm
	}
	served("after the flood")
	// Every connection of the flood is let go: the router's goroutines
	// come back to what they were before it.
	testwait.For(t, 15*time.Second, "the router's goroutines back to their number before the flood", func() bool {
		return goroutines(t, p) <= before+4
	})
	t.Logf("router peak RSS after the first of %d rounds: %d KiB, after the last: %d KiB", rounds, first, last)
	if last > first+16*1024 {
		t.Fatalf("router peak RSS grew from %d KiB after the first round to %d KiB after %d rounds of the same flood", first, last, rounds)
	}

	// What the operator sees: the counters, and a warning, not a line per connection.
	_, metrics := p.call("GET", "/metrics", "")
	for _, result := range []string{"ok", "failed"} {
		re := regexp.MustCompile(`bluegreen_router_tls_handshakes_total\{listener="` + regexp.QuoteMeta(edge) + `",result="` + result + `"\} (\d+)`)
		m := re.FindStringSubmatch(metrics)
		if m == nil {
			t.Fatalf("/metrics has no %s handshakes of %s:\n%s", result, edge, metrics)
		}
		if n, _ := strconv.Atoi(m[1]); n == 0 {
			t.Errorf("/metrics counts no %s handshake on %s", result, edge)
		}
	}
	log := p.stderr.String()
	// Thousands of failures, a warning a minute.
	if n := strings.Count(log, "TLS handshakes failing"); n < 1 || n > 3 {
		t.Fatalf("the router warned %d times of failing handshakes in %d rounds; want once a minute:\n%s", n, rounds, log)
	}
	if !strings.Contains(log, `"listener":"`+edge+`"`) {
		t.Fatalf("the warning does not name the listener %s:\n%s", edge, log)
	}
}

// goroutines counts the router process's goroutines.
func goroutines(t *testing.T, p *routerProc) int {
	t.Helper()
	code, body := p.call("GET", "/debug/pprof/goroutine?debug=1", "")
	var n int
	if _, err := fmt.Sscanf(body, "goroutine profile: total %d", &n); code != 200 || err != nil {
		t.Fatalf("goroutine profile of the router: %d %v\n%.200s", code, err, body)
	}
	return n
}

// fetch GETs url and returns the body of a 200.
func fetch(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), err
}
