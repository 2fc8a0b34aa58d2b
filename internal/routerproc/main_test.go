package routerproc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"bluegreen/internal/freeport"
	"bluegreen/internal/router"
	"bluegreen/internal/testbin"
)

// bluegreenBin is the real binary, built once for the package; the routers the
// tests supervise are its "router" command.
var bluegreenBin string

// Environment of the child process that plays a server which is then killed.
const (
	childEnv      = "BG_ROUTERPROC_TEST_CHILD" // the state directory
	childBinEnv   = "BG_ROUTERPROC_TEST_BIN"
	childTableEnv = "BG_ROUTERPROC_TEST_TABLE"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		runChild(dir)
		return
	}
	testbin.Main(m, testbin.Program{Path: &bluegreenBin, Pkg: "bluegreen/cmd/bluegreen"})
}

// runChild starts a supervisor, pushes the table it was given, says so on
// standard output and waits to be killed, as a server would.
func runChild(dir string) {
	fail := func(err error) {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	ctx := context.Background()
	s, err := Start(ctx, Options{Dir: dir, Command: []string{os.Getenv(childBinEnv), "router"}})
	if err != nil {
		fail(err)
	}
	var cfg router.Config
	if err := json.Unmarshal([]byte(os.Getenv(childTableEnv)), &cfg); err != nil {
		fail(err)
	}
	gen, err := s.Apply(ctx, cfg)
	if err != nil {
		fail(err)
	}
	fmt.Printf("ready %d %d\n", s.Pid(), gen)
	select {}
}

// stateDir returns a fresh directory short enough for a unix socket path, and
// makes sure no router started in it outlives the test.
func stateDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bgrp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("router.log:\n%s", tailFile(filepath.Join(dir, LogFile), 8192))
		}
		os.RemoveAll(dir)
	})
	// Registered after the removal, so it runs before it.
	t.Cleanup(func() { stopRouterIn(t, dir) })
	return dir
}

// stopRouterIn stops whatever router serves dir, whoever started it.
func stopRouterIn(t *testing.T, dir string) {
	s, err := newSupervisor(Options{Dir: dir, Command: []string{bluegreenBin, "router"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.StopRouter(ctx); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

// logBuffer collects a supervisor's log for a failing test to show.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start runs a supervisor on dir with the built binary; edit adjusts its options.
func start(t *testing.T, dir string, edit func(*Options)) (*Supervisor, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	opts := Options{Dir: dir, Command: []string{bluegreenBin, "router"}, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if edit != nil {
		edit(&opts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, opts)
	if err != nil {
		cancel()
		t.Fatalf("start: %v\nsupervisor log:\n%s", err, logs)
	}
	t.Cleanup(func() {
		s.Close()
		cancel()
		if t.Failed() {
			t.Logf("supervisor log:\n%s", logs)
		}
	})
	return s, logs
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	return freeport.Must(t)
}

// backend is a real HTTP server on loopback that answers its name; /slow
// holds the request until release is closed.
func backend(t *testing.T, name string, release <-chan struct{}) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" && release != nil {
			<-release
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// oneApp is a table with app shop, its blue fleet on target, served on prod.
func oneApp(prod, target string) router.Config {
	return router.Config{Production: prod, Apps: map[string]*router.AppConfig{"shop": {
		Fleets: map[string]*router.FleetConfig{"blue": {Weight: 100, Targets: []string{target}}},
	}}}
}

// fetch GETs url with a fresh connection and returns status and body, or the error.
func fetch(url string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func mustFetch(t *testing.T, url, want string) {
	t.Helper()
	code, body, err := fetch(url)
	if err != nil || code != 200 || body != want {
		t.Fatalf("GET %s: %d %q %v, want 200 %q", url, code, body, err, want)
	}
}

func gone(pid int) bool { return !pidAlive(pid) }
