package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"bluegreen/internal/freeport"
	"bluegreen/internal/testbin"
)

// helloBin is the program under test, built once for the package.
var helloBin string

func TestMain(m *testing.M) {
	testbin.Main(m, testbin.Program{Path: &helloBin, Pkg: "bluegreen/examples/hello"})
}

const patience = 15 * time.Second // how long any awaited condition may take

// proc is hello running as a child process on a free port.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	client *http.Client
	done   chan struct{} // closed once the process has exited

	mu     sync.Mutex
	stdout []string // complete lines
	part   []byte   // an unfinished last line
	stderr bytes.Buffer
}

// start runs hello in dir (a fresh one when empty) with the given extra
// environment, on a free port. The process is killed when the test ends.
func start(t *testing.T, dir string, env ...string) *proc {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	port := freePort(t)
	p := &proc{
		t:      t,
		addr:   net.JoinHostPort("127.0.0.1", port),
		client: &http.Client{Timeout: patience, Transport: &http.Transport{}},
		done:   make(chan struct{}),
	}
	p.cmd = exec.Command(helloBin)
	p.cmd.Dir = dir
	p.cmd.Env = append(append(cleanEnv(), "PORT="+port), env...)
	p.cmd.Stdout = stdoutWriter{p}
	p.cmd.Stderr = stderrWriter{p}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		p.client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("hello stdout:\n%s\nhello stderr:\n%s", strings.Join(p.lines(), "\n"), p.errText())
		}
	})
	return p
}

// cleanEnv is this process's environment without anything hello reads.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "VERSION" || k == "PORT" || strings.HasPrefix(k, "BG_") || strings.HasPrefix(k, "HELLO_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func freePort(t *testing.T) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(freeport.Must(t))
	return port
}

type stdoutWriter struct{ p *proc }

func (w stdoutWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	w.p.part = append(w.p.part, b...)
	for {
		i := bytes.IndexByte(w.p.part, '\n')
		if i < 0 {
			return len(b), nil
		}
		w.p.stdout = append(w.p.stdout, string(w.p.part[:i]))
		w.p.part = w.p.part[i+1:]
	}
}

type stderrWriter struct{ p *proc }

func (w stderrWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.stderr.Write(b)
}

func (p *proc) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.stdout...)
}

func (p *proc) errText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// eventually polls cond until it holds, failing the test after patience.
func (p *proc) eventually(what string, cond func() bool) {
	p.t.Helper()
	for deadline := time.Now().Add(patience); !cond(); {
		if time.Now().After(deadline) {
			p.t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLine waits for a line of output containing s, and returns it.
func (p *proc) waitLine(s string) string {
	p.t.Helper()
	var found string
	p.eventually(fmt.Sprintf("output line with %q", s), func() bool {
		for _, l := range p.lines() {
			if strings.Contains(l, s) {
				found = l
				return true
			}
		}
		return false
	})
	return found
}

func (p *proc) dials() bool {
	c, err := net.DialTimeout("tcp", p.addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// waitListening waits until hello accepts connections.
func (p *proc) waitListening() {
	p.t.Helper()
	p.eventually("hello to listen", func() bool {
		if p.exited() {
			p.t.Fatalf("hello exited before listening")
		}
		return p.dials()
	})
}

// waitExit waits for hello to exit and returns its exit status.
func (p *proc) waitExit() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(patience):
		p.t.Fatal("hello did not exit")
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) signal(s os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		p.t.Fatal(err)
	}
}

// get fetches path and returns the response with its body read.
func (p *proc) get(path string) (*http.Response, string) {
	p.t.Helper()
	res, err := p.client.Get("http://" + p.addr + path)
	if err != nil {
		p.t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	return res, string(body)
}

func TestVersionFromEnv(t *testing.T) {
	t.Parallel()
	p := start(t, "", "VERSION=v1", "BG_INSTANCE=shop-3", "BG_FLEET=blue")
	line := p.waitLine("listening on")
	want := fmt.Sprintf("hello v1 listening on %s pid %d", p.addr, p.cmd.Process.Pid)
	if !strings.Contains(line, want) {
		t.Errorf("startup line %q, want it to hold %q", line, want)
	}
	p.waitListening()
	res, body := p.get("/")
	if res.StatusCode != 200 || body != "hello from v1\n" {
		t.Errorf("GET / = %d %q", res.StatusCode, body)
	}
	for k, v := range map[string]string{"X-Version": "v1", "X-Instance": "shop-3", "X-Fleet": "blue"} {
		if got := res.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if res, body := p.get("/healthz"); res.StatusCode != 200 || body != "ok\n" {
		t.Errorf("GET /healthz = %d %q", res.StatusCode, body)
	}
}

func TestVersionFromFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "VERSION"), []byte("v9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, dir)
	p.waitListening()
	res, body := p.get("/")
	if body != "hello from v9\n" || res.Header.Get("X-Version") != "v9" {
		t.Errorf("GET / = %q, X-Version %q", body, res.Header.Get("X-Version"))
	}
	if h := res.Header.Get("X-Instance") + res.Header.Get("X-Fleet"); h != "" {
		t.Errorf("X-Instance or X-Fleet set without BG_INSTANCE or BG_FLEET: %q", h)
	}
}

func TestFailHealth(t *testing.T) {
	t.Parallel()
	p := start(t, "", "HELLO_FAIL_HEALTH=1")
	p.waitListening()
	for range 3 {
		if res, _ := p.get("/healthz"); res.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("GET /healthz = %d, want 503", res.StatusCode)
		}
	}
	if res, _ := p.get("/"); res.StatusCode != 200 {
		t.Errorf("GET / = %d, want 200", res.StatusCode)
	}
}

func TestHealthPath(t *testing.T) {
	t.Parallel()
	p := start(t, "", "HELLO_HEALTH_PATH=/health")
	p.waitListening()
	for path, want := range map[string]int{"/health": 200, "/healthz": 404, "/health/deep": 404, "/": 200} {
		if res, _ := p.get(path); res.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, res.StatusCode, want)
		}
	}
}

func TestFailHealthAfter(t *testing.T) {
	t.Parallel()
	const after = 1500 * time.Millisecond
	p := start(t, "", "HELLO_FAIL_HEALTH_AFTER="+after.String())
	p.waitListening()
	began := time.Now()
	if res, _ := p.get("/healthz"); res.StatusCode != 200 {
		t.Fatalf("GET /healthz at first = %d, want 200", res.StatusCode)
	}
	p.eventually("/healthz to fail", func() bool {
		res, _ := p.get("/healthz")
		return res.StatusCode == http.StatusServiceUnavailable
	})
	if d := time.Since(began); d < after/2 {
		t.Errorf("health failed %s after listening, want about %s", d, after)
	}
	if res, _ := p.get("/healthz"); res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET /healthz later = %d, want 503 still", res.StatusCode)
	}
}

func TestErrorRate(t *testing.T) {
	t.Parallel()
	p := start(t, "", "HELLO_ERROR_RATE=0.3")
	p.waitListening()
	failed := 0
	for n := 1; n <= 100; n++ {
		res, _ := p.get("/")
		want := 200
		if n*3/10 > (n-1)*3/10 {
			want = 500
		}
		if res.StatusCode != want {
			t.Errorf("request %d: status %d, want %d", n, res.StatusCode, want)
		}
		if res.StatusCode == 500 {
			failed++
		}
	}
	if failed != 30 {
		t.Errorf("%d of 100 requests failed, want 30", failed)
	}
	// /slow shares the count; /healthz is not counted.
	failed = 0
	for range 10 {
		p.get("/healthz")
		if res, _ := p.get("/slow?ms=0"); res.StatusCode == 500 {
			failed++
		}
	}
	if failed != 3 {
		t.Errorf("%d of 10 /slow requests failed, want 3", failed)
	}
}

// TestMetrics: GET /metrics counts the answers of / and /slow by status
// code, in Prometheus's text format.
func TestMetrics(t *testing.T) {
	t.Parallel()
	p := start(t, "", "HELLO_ERROR_RATE=0.5")
	p.waitListening()
	for range 4 {
		p.get("/")
	}
	p.get("/slow?ms=0")
	p.get("/healthz")
	res, body := p.get("/metrics")
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") ||
		!strings.Contains(body, `hello_requests_total{code="200"} 3`+"\n") || !strings.Contains(body, `hello_requests_total{code="500"} 2`+"\n") {
		t.Errorf("GET /metrics: %d %s\n%s", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	const latency = 400 * time.Millisecond
	p := start(t, "", "HELLO_LATENCY="+latency.String())
	p.waitListening()
	began := time.Now()
	if res, _ := p.get("/"); res.StatusCode != 200 {
		t.Fatalf("GET / = %d", res.StatusCode)
	}
	if d := time.Since(began); d < latency {
		t.Errorf("GET / took %s, want at least %s", d, latency)
	}
	began = time.Now()
	p.get("/healthz")
	if d := time.Since(began); d >= latency {
		t.Errorf("GET /healthz took %s; the latency is for / only", d)
	}
}

func TestSlowStart(t *testing.T) {
	t.Parallel()
	const delay = 1500 * time.Millisecond
	p := start(t, "", "HELLO_START_DELAY="+delay.String())
	p.waitLine("before listening")
	began := time.Now()
	if p.dials() {
		t.Fatal("listening during HELLO_START_DELAY")
	}
	p.waitListening()
	if d := time.Since(began); d < delay*2/3 {
		t.Errorf("listening %s after the delay began, want about %s", d, delay)
	}
	p.waitLine("listening on")
	if res, _ := p.get("/healthz"); res.StatusCode != 200 {
		t.Errorf("GET /healthz = %d", res.StatusCode)
	}
}

func TestExitAfter(t *testing.T) {
	t.Parallel()
	const after = time.Second
	p := start(t, "", "HELLO_EXIT_AFTER="+after.String())
	p.waitLine("listening on")
	began := time.Now()
	if code := p.waitExit(); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	if d := time.Since(began); d < after/2 {
		t.Errorf("exited %s after listening, want about %s", d, after)
	}
	p.waitLine("exiting with status 1")
}

func TestIgnoreSIGTERM(t *testing.T) {
	t.Parallel()
	p := start(t, "", "HELLO_IGNORE_SIGTERM=1")
	p.waitListening()
	p.signal(syscall.SIGTERM)
	p.waitLine("ignoring SIGTERM")
	if res, _ := p.get("/healthz"); res.StatusCode != 200 {
		t.Errorf("GET /healthz after SIGTERM = %d", res.StatusCode)
	}
	if p.exited() {
		t.Fatal("exited after an ignored SIGTERM")
	}
	p.signal(syscall.SIGKILL)
	p.waitExit()
	if ws := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("ended with %v, want killed by SIGKILL", p.cmd.ProcessState)
	}
}

func TestGracefulStopFinishesSlowRequest(t *testing.T) {
	t.Parallel()
	p := start(t, "", "VERSION=v2")
	p.waitListening()
	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		res, err := p.client.Get("http://" + p.addr + "/slow?ms=1500")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		got <- result{res.StatusCode, string(b), err}
	}()
	p.waitLine("slow request: answering in 1.5s")
	p.signal(syscall.SIGTERM)
	p.waitLine("stopping")
	p.eventually("the listener to close", func() bool { return !p.dials() })
	r := <-got
	if r.err != nil || r.status != 200 || r.body != "hello from v2 after 1.5s\n" {
		t.Errorf("slow request during stop: %d %q %v", r.status, r.body, r.err)
	}
	if code := p.waitExit(); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	p.waitLine("stopped")
}

func TestShutdownTimeoutCutsRequests(t *testing.T) {
	t.Parallel()
	p := start(t, "", "HELLO_SHUTDOWN_TIMEOUT=300ms")
	p.waitListening()
	failed := make(chan error, 1)
	go func() {
		res, err := p.client.Get("http://" + p.addr + "/slow?ms=60000")
		if err == nil {
			_, err = io.ReadAll(res.Body)
			res.Body.Close()
		}
		failed <- err
	}()
	p.waitLine("slow request: answering in 1m0s")
	p.signal(syscall.SIGTERM)
	if code := p.waitExit(); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	p.waitLine("cutting them off")
	if err := <-failed; err == nil {
		t.Error("the slow request succeeded; want it cut off")
	}
}

func TestStopEndsStreamsAndSockets(t *testing.T) {
	t.Parallel()
	p := start(t, "")
	p.waitListening()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()

	res, err := p.client.Get("http://" + p.addr + "/sse?interval=50ms")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	events := bufio.NewReader(res.Body)
	if line, err := events.ReadString('\n'); err != nil || line != "id: 1\n" {
		t.Fatalf("first SSE line %q, %v", line, err)
	}
	c, _, err := websocket.Dial(ctx, "ws://"+p.addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); err != nil {
		t.Fatal(err)
	}

	p.signal(syscall.SIGTERM)
	if _, err := io.Copy(io.Discard, events); err != nil {
		t.Errorf("SSE stream ended with %v, want a clean end", err)
	}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("WebSocket read after stop: %v, want close status 1001", err)
	}
	if code := p.waitExit(); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	p.waitLine("stopped")
}

func TestSSE(t *testing.T) {
	t.Parallel()
	const every = 300 * time.Millisecond
	p := start(t, "", "VERSION=v3")
	p.waitListening()
	res, err := p.client.Get("http://" + p.addr + "/sse?n=3&interval=" + every.String())
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	r := bufio.NewReader(res.Body)
	var arrived []time.Time
	for i := 1; i <= 3; i++ {
		var event []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("event %d: %v after %q", i, err, event)
			}
			if line == "\n" {
				break
			}
			event = append(event, strings.TrimSuffix(line, "\n"))
		}
		arrived = append(arrived, time.Now())
		want := []string{"id: " + strconv.Itoa(i), "event: hello", fmt.Sprintf(`data: {"version":"v3","seq":%d}`, i)}
		if strings.Join(event, "|") != strings.Join(want, "|") {
			t.Errorf("event %d = %q, want %q", i, event, want)
		}
	}
	// Each event is flushed on its own: they arrive an interval apart, not together.
	for i := 1; i < len(arrived); i++ {
		if d := arrived[i].Sub(arrived[i-1]); d < every/2 {
			t.Errorf("event %d arrived %s after the one before, want about %s", i+1, d, every)
		}
	}
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Errorf("after 3 events: %q, %v; want the end of the stream", rest, err)
	}
}

func TestWebSocketEcho(t *testing.T) {
	t.Parallel()
	p := start(t, "", "VERSION=v4")
	p.waitListening()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	c, res, err := websocket.Dial(ctx, "ws://"+p.addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if v := res.Header.Get("X-Version"); v != "v4" {
		t.Errorf("X-Version on the upgrade = %q", v)
	}
	for _, m := range []struct {
		typ  websocket.MessageType
		data []byte
	}{
		{websocket.MessageText, []byte("hello, echo")},
		{websocket.MessageBinary, []byte{0, 1, 2, 0xfe, 0xff}},
	} {
		if err := c.Write(ctx, m.typ, m.data); err != nil {
			t.Fatal(err)
		}
		typ, data, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if typ != m.typ || !bytes.Equal(data, m.data) {
			t.Errorf("echo of %v %q = %v %q", m.typ, m.data, typ, data)
		}
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Errorf("close: %v", err)
	}
}

func TestBadEnvExits2(t *testing.T) {
	t.Parallel()
	for _, kv := range []string{
		"HELLO_ERROR_RATE=abc",
		"HELLO_ERROR_RATE=1.5",
		"HELLO_LATENCY=fast",
		"HELLO_FAIL_HEALTH=maybe",
		"HELLO_FAIL_HEALTH_AFTER=soon",
		"HELLO_START_DELAY=-1s",
		"HELLO_EXIT_AFTER=5",
		"HELLO_IGNORE_SIGTERM=yes",
		"HELLO_SHUTDOWN_TIMEOUT=forever",
		"HELLO_HEALTH_PATH=/ready",
		"PORT=http",
	} {
		t.Run(kv, func(t *testing.T) {
			t.Parallel()
			p := start(t, "", kv)
			if code := p.waitExit(); code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			name, _, _ := strings.Cut(kv, "=")
			if msg := p.errText(); !strings.Contains(msg, name) {
				t.Errorf("message %q does not name %s", msg, name)
			}
		})
	}
}
