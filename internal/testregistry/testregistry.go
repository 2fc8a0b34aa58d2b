// Package testregistry runs a real container registry (the CNCF
// Distribution registry) on loopback for tests that push and pull images:
// plain HTTP on 127.0.0.1, filesystem storage in the test's temporary
// directory, and basic authentication with credentials made for the test.
// A Docker engine pulls from 127.0.0.1:PORT without any TLS configuration.
//
// The registry binary is built once from the Go module proxy by
// scripts/build-registry.sh (run by scripts/setup.sh) and cached under
// ~/.cache/bluegreen; a test that finds it missing builds it through the
// same script.
package testregistry

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"bluegreen/internal/freeport"
	"bluegreen/internal/testwait"
)

// Registry is a registry running for one test; it stops when the test ends.
type Registry struct {
	// Addr is "127.0.0.1:PORT", the host part of image references
	// (Addr + "/shop:v2") and the server address for a registry login.
	Addr string
	// Username and Password are the credentials the registry accepts; both
	// are empty for a registry started with StartAnonymous.
	Username string
	Password string

	logPath string
}

// URL is the registry's base URL, "http://127.0.0.1:PORT".
func (r *Registry) URL() string { return "http://" + r.Addr }

// Log is what the registry has logged so far: every request it answered,
// and why it refused one.
func (r *Registry) Log() string {
	b, _ := os.ReadFile(r.logPath)
	return string(b)
}

// Start runs a registry that accepts only Username and Password (HTTP basic
// authentication) and stops it when the test ends.
func Start(t testing.TB) *Registry {
	t.Helper()
	return start(t, true)
}

// StartAnonymous runs a registry that accepts every request without
// credentials, and stops it when the test ends.
func StartAnonymous(t testing.TB) *Registry {
	t.Helper()
	return start(t, false)
}

// attempts is how many ports are tried: a port found free can be taken by
// another test before the registry binds it.
const attempts = 3

// pickAddr picks the address to try; a test replaces it to hand out a
// taken port.
var pickAddr = func(t testing.TB) string { return freeport.Must(t) }

func start(t testing.TB, withAuth bool) *Registry {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatalf("testregistry: %v", err)
	}
	dir := t.TempDir()
	r := &Registry{}
	var auth string
	if withAuth {
		r.Username, r.Password = "bluegreen-test", randomHex(16)
		auth = writeHtpasswd(t, dir, r.Username, r.Password)
	}
	for attempt := 1; ; attempt++ {
		r.Addr = pickAddr(t)
		r.logPath = filepath.Join(dir, fmt.Sprintf("registry-%d.log", attempt))
		conf := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(conf, []byte(config(dir, r.Addr, auth)), 0o600); err != nil {
			t.Fatal(err)
		}
		exited := run(t, bin, conf, r.logPath)
		if r.waitReady(t, withAuth, exited) {
			return r
		}
		if attempt == attempts || !strings.Contains(r.Log(), "address already in use") {
			t.Fatalf("testregistry: the registry on %s exited before it answered; %s", r.Addr, r.logTail())
		}
	}
}

// config is the registry's configuration; auth is the htpasswd file, or
// empty for no authentication.
func config(dir, addr, auth string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %q
  secret: %q
health:
  storagedriver:
    enabled: false
`, filepath.Join(dir, "storage"), addr, randomHex(16))
	if auth != "" {
		fmt.Fprintf(&b, `auth:
  htpasswd:
    realm: bluegreen-test
    path: %q
`, auth)
	}
	return b.String()
}

// writeHtpasswd writes the one entry the registry accepts. The registry
// reads only bcrypt entries; the lowest cost keeps each authenticated
// request (a pull makes several) cheap, which is all a test needs.
func writeHtpasswd(t testing.TB, dir, user, password string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(path, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// run starts the registry with its output in logPath, stops it when the
// test ends, and returns a channel closed when it has exited.
func run(t testing.TB, bin, conf, logPath string) <-chan struct{} {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "serve", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = childEnv()
	// Pdeathsig: a test binary killed by its timeout leaves no registry
	// behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testregistry: starting %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		// With no drain timeout configured, the registry leaves at once
		// on SIGTERM; SIGKILL is for one that does not.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	return exited
}

// childEnv is the test's environment without variables that would change
// the registry's configuration (REGISTRY_*) or make it export traces: by
// default it sends them to an OpenTelemetry collector on localhost:4318.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return append(env, "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none")
}

// waitReady waits until the registry says it listens on Addr and GET /v2/
// answers as it will (401 with authentication, 200 without), and reports
// true, or reports false if the registry exits first. Its own word that it
// listens is what tells it from another server that took the port first.
func (r *Registry) waitReady(t testing.TB, withAuth bool, exited <-chan struct{}) bool {
	t.Helper()
	want := http.StatusOK
	if withAuth {
		want = http.StatusUnauthorized
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	gone := false
	testwait.ForOr(t, 30*time.Second, fmt.Sprintf("GET %s/v2/ to answer %d", r.URL(), want), func() bool {
		select {
		case <-exited:
			gone = true
			return true
		default:
		}
		if !strings.Contains(r.Log(), "listening on "+r.Addr) {
			return false
		}
		resp, err := client.Get(r.URL() + "/v2/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == want
	}, r.logTail)
	return !gone
}

// logTail is the end of the registry's log, for a failure message.
func (r *Registry) logTail() string {
	log := r.Log()
	if strings.TrimSpace(log) == "" {
		return "its log is empty"
	}
	return "the end of its log:\n" + tail(log, 40)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
