//go:build linux

package router

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"bluegreen/internal/testwait"
)

// When the router runs out of descriptors, the connections it cannot open are
// its own failure, not the targets': no target may become suspect or
// unhealthy for them. The router runs in a child process (this test binary,
// TestHelperRouterProcess) whose descriptor limit is lowered on command, so
// that the limit is real and this process keeps its own descriptors.

// closingBackend answers every request with Connection: close, so that the
// router pools no connection and must dial for each request.
func closingBackend(t *testing.T) string {
	t.Helper()
	return upstreamServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
	})
}

// routerChild is the router in its child process.
type routerChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	stderr *syncBuffer
}

// say sends a command to the child and waits for its answer line.
func (c *routerChild) say(t *testing.T, cmd string) string {
	t.Helper()
	fmt.Fprintln(c.stdin, cmd)
	line, err := c.out.ReadString('\n')
	if err != nil {
		t.Fatalf("child: %s: %v\n%s", cmd, err, c.stderr)
	}
	return strings.TrimSpace(line)
}

func startRouterChild(t *testing.T, cfg *Config, loops bool) *routerChild {
	t.Helper()
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRouterProcess$")
	cmd.Env = append(os.Environ(), "BLUEGREEN_TEST_ROUTER="+string(data), fmt.Sprintf("BLUEGREEN_TEST_LOOPS=%v", loops))
	c := &routerChild{cmd: cmd, stderr: &syncBuffer{}}
	cmd.Stderr = c.stderr
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.out = bufio.NewReader(stdout)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.stdin.Close()
		cmd.Wait()
		if t.Failed() {
			t.Logf("router log:\n%s", c.stderr)
		}
	})
	line, err := c.out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("child did not start: %q %v\n%s", line, err, c.stderr)
	}
	return c
}

func TestLocalDialFailuresDoNotBlameTargets(t *testing.T) {
	for _, mode := range serveModes {
		t.Run(mode.name, func(t *testing.T) {
			b1, b2 := closingBackend(t), closingBackend(t)
			cfg := &Config{
				Admin: freeAddr(t), Production: freeAddr(t),
				Apps: map[string]*AppConfig{"shop": {
					Fleets: map[string]*FleetConfig{"blue": {Weight: 100, Targets: []string{b1, b2}}},
					// One failed check would take a target out, and only a
					// thousand passes bring it back: a wrong verdict shows.
					Health: &HealthConfig{Path: "/healthz", Interval: Duration(50 * time.Millisecond),
						UnhealthyThreshold: 1, HealthyThreshold: 1000},
				}},
			}
			child := startRouterChild(t, cfg, mode.loops)
			// GET is served by the event loop; POST by the fasthttp server.
			method, req := "GET", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
			if !mode.loops {
				method, req = "POST", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
			}
			// The client's connection is open before descriptors run out.
			c, br := rawConn(t, cfg.Production)
			if code, body := roundTrip(t, c, br, method, req); code != 200 {
				t.Fatalf("before the limit: %d %s", code, body)
			}
			var code int
			var body string
			// A descriptor a health check frees just as the limit drops can
			// still be had: the cycle is then tried again.
			// So can a pooled connection the backend closed meanwhile (a
			// POST is not replayed): that is not what is tested either.
			for try := 0; try < 20; try++ {
				child.say(t, "low")
				code, body = roundTrip(t, c, br, method, req)
				stale := code == http.StatusBadGateway && strings.Contains(body, "connection reset")
				if code != 200 && !stale {
					break
				}
				child.say(t, "restore")
				if stale {
					c, br = rawConn(t, cfg.Production)
				}
			}
			if code != http.StatusServiceUnavailable || !strings.Contains(body, "bluegreen: the router is out of resources to connect to") ||
				!strings.Contains(body, "too many open files") {
				t.Fatalf("out of descriptors: %d %q, want 503 naming the router's own shortage", code, body)
			}
			testwait.For(t, 10*time.Second, "a health check to find no descriptor", func() bool {
				return strings.Contains(child.stderr.String(), "health check could not run")
			})
			child.say(t, "restore")
			resp, err := http.Get("http://" + cfg.Admin + "/routes")
			if err != nil {
				t.Fatal(err)
			}
			var v RoutesView
			json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			if len(v.Targets) != 2 {
				t.Fatalf("routes: %+v", v)
			}
			for _, ts := range v.Targets {
				if !ts.Healthy || ts.Suspect {
					t.Errorf("target %s was blamed for the router's own shortage: healthy %v, suspect %v", ts.Address, ts.Healthy, ts.Suspect)
				}
			}
			if code, body := roundTrip(t, c, br, method, req); code != 200 {
				t.Fatalf("once descriptors are back: %d %s", code, body)
			}
		})
	}
}

// TestHelperRouterProcess is not a test of its own: TestLocalDialFailuresDoNotBlameTargets
// runs the test binary with it as the router, in another process. It serves
// the table in $BLUEGREEN_TEST_ROUTER, prints "ready", then obeys lines on its
// standard input: "low" leaves it no free descriptor, "restore" gives them
// back; each is answered with a line once done. It ends with its input.
func TestHelperRouterProcess(t *testing.T) {
	data := os.Getenv("BLUEGREEN_TEST_ROUTER")
	if data == "" {
		t.Skip("a helper process of TestLocalDialFailuresDoNotBlameTargets")
	}
	cfg, err := ParseJSON([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	r := New(Options{Logger: slog.New(slog.NewJSONHandler(os.Stderr, nil))})
	if os.Getenv("BLUEGREEN_TEST_LOOPS") == "false" {
		r.loopsErr = errors.New("switched off by the test")
	}
	if _, err := r.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Shutdown(ctx)
	}()
	if _, err := r.ListenAdmin(cfg.Admin); err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	var fill []*os.File
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "low":
			// A new descriptor takes the lowest free number, and none may be
			// at or above the limit: the number a probe gets is the limit
			// that leaves none. Any lower one freed meanwhile is filled.
			probe, err := os.Open(os.DevNull)
			if err != nil {
				t.Fatal(err)
			}
			low := lim
			low.Cur = uint64(probe.Fd())
			probe.Close()
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
				t.Fatal(err)
			}
			for {
				f, err := os.Open(os.DevNull)
				if err != nil {
					break
				}
				fill = append(fill, f)
			}
			fmt.Println("low")
		case "restore":
			for _, f := range fill {
				f.Close()
			}
			fill = nil
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
				t.Fatal(err)
			}
			fmt.Println("restored")
		}
	}
}

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
