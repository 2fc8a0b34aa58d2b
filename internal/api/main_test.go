package api

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"bluegreen/internal/artifact"
	"bluegreen/internal/auth"
	"bluegreen/internal/engine"
	"bluegreen/internal/params"
	"bluegreen/internal/platform/process"
	"bluegreen/internal/routerproc"
	"bluegreen/internal/store"
	"bluegreen/internal/testbin"
)

// bluegreenBin is the real binary, built once: the engine's router runs as
// its "router" command and instances would use its "instance-shim".
var bluegreenBin string

func TestMain(m *testing.M) {
	testbin.Main(m, testbin.Program{Path: &bluegreenBin, Pkg: "bluegreen/cmd/bluegreen"})
}

// apiEnv is the API over a real store, params, bundle store, process
// platform, router process and engine, served on a loopback socket.
type apiEnv struct {
	srv     *Server
	url     string
	tokens  *auth.Tokens
	dir     string // the data directory
	bundles *artifact.Store
	log     *logBuffer // what the API logged
}

// logBuffer is a log written by the server's goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// envOptions vary what newAPIEnvWith builds.
type envOptions struct {
	limits artifact.Limits
	server func(*Server) // adjusts the server before it serves
}

func newAPIEnv(t *testing.T) *apiEnv {
	t.Helper()
	return newAPIEnvWith(t, envOptions{})
}

func newAPIEnvWith(t *testing.T, o envOptions) *apiEnv {
	t.Helper()
	ctx := context.Background()
	// Short: the router's unix socket lives in it.
	dir, err := os.MkdirTemp("", "bgapi-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	log := slog.New(slog.DiscardHandler)

	st, err := store.Open(ctx, dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ps, err := params.Open(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	bundles, err := artifact.New(filepath.Join(dir, "bundles"), artifact.Options{Limits: o.limits})
	if err != nil {
		t.Fatal(err)
	}
	plat, err := process.New(process.Options{StateDir: filepath.Join(dir, "instances"), Shim: []string{bluegreenBin, "instance-shim"}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plat.Close() })
	sup, err := routerproc.Start(ctx, routerproc.Options{Dir: filepath.Join(dir, "router"), Command: []string{bluegreenBin, "router"}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sup.StopRouter(sctx); err != nil {
			t.Errorf("stopping the router: %v", err)
		}
		sup.Close()
	})
	eng, err := engine.New(engine.Options{Store: st, Params: ps, Bundles: bundles, Platform: plat,
		Traffic: engine.NewRouterTraffic(sup), RevisionsDir: filepath.Join(dir, "revisions"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ectx, cancel := context.WithCancel(ctx)
	if err := eng.Start(ectx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(); cancel() })

	tokens := auth.New(st, nil)
	apiLog := &logBuffer{}
	// Tests make many failed calls from one address: the limit on them
	// has tests of its own, which set it back.
	lax := auth.NewLimiter(1<<20, time.Millisecond, nil)
	s := &Server{Engine: eng, Store: st, Bundles: bundles, Platform: plat, Params: ps, Tokens: tokens,
		Logger: slog.New(slog.NewTextHandler(apiLog, nil)), Failures: lax}
	if o.server != nil {
		o.server(s)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return &apiEnv{srv: s, url: hs.URL, tokens: tokens, dir: dir, bundles: bundles, log: apiLog}
}

// token makes a token of role and returns its secret.
func (e *apiEnv) token(t *testing.T, name string, role auth.Role) string {
	t.Helper()
	_, secret, err := e.tokens.Create(context.Background(), name, role)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// client is an API client with the given secret.
func (e *apiEnv) client(secret string) *Client {
	c := NewClient(e.url)
	c.Token = secret
	return c
}
