package main

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
	"math"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The HTTPS part of the run: HAProxy, nginx and the bluegreen router
// terminate TLS (the same ECDSA P-256 certificate, TLS 1.2 and later, ALPN
// h2 and http/1.1) in front of the same two backends, each loaded in three
// modes:
//
//	h1         wrk over HTTPS with keep-alive: CPU per request once connections are up
//	handshake  wrk with "Connection: close": every request a new connection and a full handshake
//	h2         h2load, 10 streams per connection
//
// Rounds interleave the proxies as in the plain part; cells are medians.

var tlsModes = []string{"h1", "handshake", "h2"}

// tlsRun is one load of one proxy in one mode.
type tlsRun struct {
	Proxy       string  `json:"proxy"`
	Mode        string  `json:"mode"`
	Round       int     `json:"round"`
	Requests    int64   `json:"requests"`
	ReqPerSec   float64 `json:"req_per_s"`
	Errors      int64   `json:"errors"`
	ProxyCPU    float64 `json:"proxy_cpu_us_per_req"`
	PerCoreRate float64 `json:"req_per_proxy_cpu_s"` // handshakes per second per core, in handshake mode
	OtherCPUPct float64 `json:"other_cpu_pct"`
}

type tlsContender struct {
	name string
	addr string
	proc *proc
}

// runTLS starts the TLS proxies, measures them and prints their tables.
func (b *bench) runTLS(ctx context.Context) ([]tlsRun, error) {
	dir, err := filepath.Abs(filepath.Join(b.opts.out, "tls"))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cert, key, both, err := writeBenchCert(dir)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	b1, b2 := b.ports["b1"], b.ports["b2"]
	var cs []*tlsContender
	for i, name := range []string{"haproxy", "nginx", "bluegreen"} {
		if !contains(b.opts.proxies, name) {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", ports[i])
		var p *proc
		switch name {
		case "haproxy":
			cfg := filepath.Join(dir, "haproxy.cfg")
			err = os.WriteFile(cfg, []byte(haproxyTLSConfig(ports[i], b1, b2, both)), 0o644)
			if err == nil {
				var bin string
				if bin, err = systemBinary("haproxy"); err == nil {
					p, err = b.procs.start("haproxy-tls", filepath.Join(dir, "haproxy.log"), bin, "-f", cfg, "-db")
				}
			}
		case "nginx":
			ndir := filepath.Join(dir, "nginx")
			os.MkdirAll(ndir, 0o755)
			cfg := filepath.Join(ndir, "nginx.conf")
			err = os.WriteFile(cfg, []byte(nginxTLSConfig(ndir, ports[i], b1, b2, cert, key)), 0o644)
			if err == nil {
				var bin string
				if bin, err = systemBinary("nginx"); err == nil {
					p, err = b.procs.start("nginx-tls", filepath.Join(dir, "nginx.log"), bin,
						"-p", ndir+"/", "-e", filepath.Join(ndir, "error.log"), "-c", cfg, "-g", "daemon off;")
				}
			}
		case "bluegreen":
			cfg := filepath.Join(dir, "routes.yaml")
			err = os.WriteFile(cfg, []byte(routesTLSConfig(ports[3], ports[i], b1, b2, cert, key)), 0o644)
			if err == nil {
				p, err = b.procs.start("bluegreen-tls", filepath.Join(dir, "bluegreen.log"), b.opts.bluegreen, "router", "--config", cfg)
			}
		}
		if err == nil {
			err = waitTLSReady(ctx, p, addr)
		}
		if err != nil {
			if p != nil {
				p.stop()
			}
			b.failures[name+" (https)"] = "did not start: " + err.Error()
			fmt.Printf("%-10s https FAILED to start: %v\n", name, err)
			continue
		}
		fmt.Printf("%-10s https://%s/\n", name, addr)
		cs = append(cs, &tlsContender{name: name, addr: addr, proc: p})
	}
	if _, err := exec.LookPath("h2load"); err != nil {
		fmt.Println("h2load not installed (package nghttp2-client): no h2 rows")
	}
	var runs []tlsRun
	conns := 64
	fmt.Printf("\nHTTPS: %d rounds × %d modes × %d proxies, %ds each, %d connections\n", b.opts.rounds, len(tlsModes), len(cs), b.opts.seconds, conns)
	for round := 1; round <= b.opts.rounds; round++ {
		for _, mode := range tlsModes {
			if mode == "h2" {
				if _, err := exec.LookPath("h2load"); err != nil {
					continue
				}
			}
			for i := range cs {
				c := cs[(i+round-1)%len(cs)]
				r, err := b.tlsOne(ctx, c, mode, round, conns)
				if ctx.Err() != nil {
					return runs, ctx.Err()
				}
				if err != nil {
					fmt.Printf("  round %d %-9s %-10s FAILED: %v\n", round, mode, c.name, err)
					continue
				}
				runs = append(runs, r)
				fmt.Printf("  round %d %-9s %-10s %9.0f req/s  proxy %6.1f µs/req  %8.0f req per proxy CPU-second  errors %d  other load %.0f%%\n",
					round, mode, c.name, r.ReqPerSec, r.ProxyCPU, r.PerCoreRate, r.Errors, r.OtherCPUPct)
			}
		}
	}
	return runs, nil
}

// tlsOne loads one contender in one mode and takes its CPU over the run.
func (b *bench) tlsOne(ctx context.Context, c *tlsContender, mode string, round, conns int) (tlsRun, error) {
	before, err := treeTicks(c.proc.pid())
	if err != nil {
		return tlsRun{}, err
	}
	busyBefore, _ := machineBusyTicks()
	started := time.Now()
	var req, errs int64
	var rps float64
	var loadCPU time.Duration
	url := "https://" + c.addr + "/"
	switch mode {
	case "h1", "handshake":
		args := []string{"-t" + strconv.Itoa(b.opts.threads), "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(b.opts.seconds) + "s", "--latency"}
		if mode == "handshake" {
			args = append(args, "-H", "Connection: close")
		}
		cmd := exec.CommandContext(ctx, "wrk", append(args, url)...)
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState != nil {
			loadCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		if err != nil {
			return tlsRun{}, fmt.Errorf("wrk: %v: %s", err, out)
		}
		res, err := parseWrk(string(out))
		if err != nil {
			return tlsRun{}, err
		}
		req, rps, errs = res.Requests, res.ReqPerSec, res.Errors()
		if mode == "handshake" {
			// A server closing after each answer is what was asked for,
			// not an error of the proxy: only bad statuses count.
			errs = res.BadStatus
		}
	case "h2":
		cmd := exec.CommandContext(ctx, "h2load", "-t", strconv.Itoa(b.opts.threads), "-c", strconv.Itoa(conns), "-m", "10",
			"-D", strconv.Itoa(b.opts.seconds), url)
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState != nil {
			loadCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		if err != nil {
			return tlsRun{}, fmt.Errorf("h2load: %v: %s", err, tailLines(string(out), 5))
		}
		if req, rps, errs, err = parseH2load(string(out)); err != nil {
			return tlsRun{}, err
		}
	}
	elapsed := time.Since(started)
	after, _ := treeTicks(c.proc.pid())
	busyAfter, _ := machineBusyTicks()
	if !c.proc.running() {
		return tlsRun{}, fmt.Errorf("process exited: %s", c.proc.tail())
	}
	if req == 0 {
		return tlsRun{}, fmt.Errorf("no requests completed")
	}
	ticks := ticksDelta(before, after)
	cpuSec := float64(ticks) / b.clk
	r := tlsRun{Proxy: c.name, Mode: mode, Round: round, Requests: req, ReqPerSec: rps, Errors: errs,
		ProxyCPU: cpuSec * 1e6 / float64(req)}
	if cpuSec > 0 {
		r.PerCoreRate = float64(req) / cpuSec
	}
	other := (float64(busyAfter-busyBefore)/b.clk - cpuSec - loadCPU.Seconds()) / (elapsed.Seconds() * float64(runtime.NumCPU())) * 100
	r.OtherCPUPct = math.Max(0, other)
	return r, nil
}

var (
	reH2Requests = regexp.MustCompile(`requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored`)
	reH2RPS      = regexp.MustCompile(`finished in [\d.]+\w+, ([\d.]+) req/s`)
)

// parseH2load reads the succeeded requests, the rate and the failures.
func parseH2load(out string) (req int64, rps float64, errs int64, err error) {
	m := reH2Requests.FindStringSubmatch(out)
	r := reH2RPS.FindStringSubmatch(out)
	if m == nil || r == nil {
		return 0, 0, 0, fmt.Errorf("h2load output not understood: %s", tailLines(out, 5))
	}
	req, _ = strconv.ParseInt(m[2], 10, 64)
	failed, _ := strconv.ParseInt(m[3], 10, 64)
	errored, _ := strconv.ParseInt(m[4], 10, 64)
	rps, _ = strconv.ParseFloat(r[1], 64)
	return req, rps, failed + errored, nil
}

// printTLS prints one table per mode: medians over the rounds, and ratios
// to HAProxy.
func printTLS(w io.Writer, runs []tlsRun, rounds, seconds int) {
	for _, mode := range tlsModes {
		byProxy := map[string][]tlsRun{}
		var names []string
		for _, r := range runs {
			if r.Mode != mode {
				continue
			}
			if _, ok := byProxy[r.Proxy]; !ok {
				names = append(names, r.Proxy)
			}
			byProxy[r.Proxy] = append(byProxy[r.Proxy], r)
		}
		if len(names) == 0 {
			continue
		}
		sort.Strings(names)
		med := func(rs []tlsRun, f func(tlsRun) float64) float64 {
			xs := make([]float64, len(rs))
			for i, r := range rs {
				xs[i] = f(r)
			}
			return median(xs)
		}
		hp := byProxy["haproxy"]
		fmt.Fprintf(w, "\n== HTTPS %s (64 connections, %ds, median of %d rounds)\n", map[string]string{
			"h1": "HTTP/1.1 keep-alive (wrk)", "handshake": "a new TLS handshake per request (wrk, Connection: close)", "h2": "HTTP/2, 10 streams per connection (h2load)"}[mode], seconds, rounds)
		rateName := "req per CPU-s"
		if mode == "handshake" {
			rateName = "handshakes/s/core"
		}
		fmt.Fprintf(w, "%-10s %9s %7s %13s %18s %18s\n", "proxy", "req/s", "errors", "proxy µs/req", rateName, "µs/req vs HAProxy")
		for _, n := range names {
			rs := byProxy[n]
			cpu := med(rs, func(r tlsRun) float64 { return r.ProxyCPU })
			ratio := "-"
			if len(hp) > 0 {
				ratio = fmt.Sprintf("%.2fx", cpu/med(hp, func(r tlsRun) float64 { return r.ProxyCPU }))
			}
			var errs int64
			for _, r := range rs {
				errs += r.Errors
			}
			fmt.Fprintf(w, "%-10s %9.0f %7d %13.1f %18.0f %18s\n", n, med(rs, func(r tlsRun) float64 { return r.ReqPerSec }), errs, cpu,
				med(rs, func(r tlsRun) float64 { return r.PerCoreRate }), ratio)
		}
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitTLSReady waits until the proxy answers over HTTPS.
func waitTLSReady(ctx context.Context, p *proc, addr string) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(15 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if !p.running() {
			return fmt.Errorf("%s exited (%v): %s", p.name, p.waitErr, p.tail())
		}
		if last = probe(ctx, client, "https://"+addr+"/"); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("not ready after 15s: %v", last)
}

// writeBenchCert writes a self-signed ECDSA P-256 certificate for
// 127.0.0.1: cert.pem, key.pem and both.pem (HAProxy's form).
func writeBenchCert(dir string) (cert, key, both string, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return
	}
	cp := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kp := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	cert, key, both = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "both.pem")
	for path, data := range map[string][]byte{cert: cp, key: kp, both: bytes.Join([][]byte{cp, kp}, nil)} {
		if err = os.WriteFile(path, data, 0o600); err != nil {
			return
		}
	}
	return
}

func haproxyTLSConfig(port, b1, b2 int, pemFile string) string {
	return fmt.Sprintf(`global
    nbthread 2
    maxconn 8000
    ssl-default-bind-options ssl-min-ver TLSv1.2

defaults
    mode http
    maxconn 8000
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s

frontend bench
    bind 127.0.0.1:%d ssl crt %s alpn h2,http/1.1
    default_backend backends

backend backends
    balance roundrobin
    server b1 127.0.0.1:%d
    server b2 127.0.0.1:%d
`, port, pemFile, b1, b2)
}

func nginxTLSConfig(dir string, port, b1, b2 int, cert, key string) string {
	return fmt.Sprintf(`worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;

events {
    worker_connections 8192;
}

http {
    access_log off;
    keepalive_requests 1000000;
    http2_max_requests 1000000;
    client_body_temp_path %[1]s/client_temp;
    proxy_temp_path %[1]s/proxy_temp;
    fastcgi_temp_path %[1]s/fastcgi_temp;
    uwsgi_temp_path %[1]s/uwsgi_temp;
    scgi_temp_path %[1]s/scgi_temp;

    upstream backends {
        server 127.0.0.1:%[3]d;
        server 127.0.0.1:%[4]d;
        keepalive 256;
        keepalive_requests 1000000;
    }

    server {
        listen 127.0.0.1:%[2]d ssl http2;
        ssl_certificate %[5]s;
        ssl_certificate_key %[6]s;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`, dir, port, b1, b2, cert, key)
}

func routesTLSConfig(admin, production, b1, b2 int, cert, key string) string {
	return fmt.Sprintf(`admin: 127.0.0.1:%d
production: 127.0.0.1:%d
apps:
  bench:
    hosts: ["*"]
    tls: { cert_file: %q, key_file: %q }
    fleets:
      blue:  { weight: 50, targets: ["127.0.0.1:%d"] }
      green: { weight: 50, targets: ["127.0.0.1:%d"] }
`, admin, production, cert, key, b1, b2)
}
