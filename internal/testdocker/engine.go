// Package testdocker runs private Docker engines for tests: a dockerd of the
// test binary's own, with its own data root, exec root, pidfile and socket
// under a short directory in /tmp, no bridge, no iptables and no IP
// masquerading (containers use the host's network, on 127.0.0.1). Several
// test binaries can each run one at once: nothing they use is shared but the
// kernel. The engine comes from Debian's docker.io, which scripts/setup.sh
// installs; a test fails, never skips, when it cannot start.
//
// Shared returns the test binary's engine, started at first use; Close,
// called from TestMain after m.Run, stops it and removes everything it
// left. New starts an engine for one test (to stop and restart it, say),
// closed at the test's end.
package testdocker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// Options configure an engine.
type Options struct {
	// LiveRestore starts dockerd with --live-restore: its containers keep
	// running while it is stopped and restarted.
	LiveRestore bool
}

// Engine is a private dockerd.
type Engine struct {
	// Dir holds the engine's roots, socket, pidfile and log.
	Dir string
	// Host is the engine's address as DOCKER_HOST takes it
	// ("unix:///tmp/bgd-…/docker.sock").
	Host string

	opts Options

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

// startTimeout bounds how long dockerd may take to answer; it is usually
// well under a second.
const startTimeout = 60 * time.Second

// Start starts a private engine and waits until it answers.
func Start(opts Options) (*Engine, error) {
	sweep()
	if _, err := exec.LookPath("dockerd"); err != nil {
		return nil, errors.New("dockerd is not installed: run scripts/setup.sh (it installs Debian's docker.io)")
	}
	dir, err := runDir()
	if err != nil {
		return nil, err
	}
	e := &Engine{Dir: dir, Host: "unix://" + filepath.Join(dir, "docker.sock"), opts: opts}
	// An empty configuration file keeps the machine's /etc/docker/daemon.json
	// (a bridge, a registry mirror) out of the tests.
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}\n"), 0o644); err != nil {
		return nil, err
	}
	if err := e.start(); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// runDir makes the engine's directory. Unix socket paths are limited to 108
// bytes, and containerd puts its own below the exec root, so the directory
// is short and in /tmp whatever TMPDIR says.
func runDir() (string, error) {
	dir, err := os.MkdirTemp("/tmp", "bgd-")
	if err != nil {
		return "", fmt.Errorf("making the engine's directory: %w", err)
	}
	// The owner file lets a later run clean up after a test binary that
	// was killed before it could (see sweep).
	owner := fmt.Sprintf("%d %d\n", os.Getpid(), startTicks(os.Getpid()))
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(owner), 0o644); err != nil {
		return "", err
	}
	return dir, nil
}

func (e *Engine) args() []string {
	args := []string{
		"--config-file", filepath.Join(e.Dir, "daemon.json"),
		"--data-root", filepath.Join(e.Dir, "data"),
		"--exec-root", filepath.Join(e.Dir, "exec"),
		"--pidfile", filepath.Join(e.Dir, "dockerd.pid"),
		"-H", e.Host,
		"--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
	}
	if e.opts.LiveRestore {
		args = append(args, "--live-restore")
	}
	return args
}

// start runs dockerd and waits until it answers a ping. Engines start one
// at a time on the machine: a dockerd's first start writes
// /etc/docker/key.json, which another starting at the same moment could
// read half written.
func (e *Engine) start() error {
	lock, err := os.OpenFile("/tmp/bgd.lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close() // and with it the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	log, err := os.OpenFile(filepath.Join(e.Dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command("dockerd", e.args()...)
	cmd.Stdout, cmd.Stderr = log, log
	// Should the test binary die, dockerd is told to shut down (it stops
	// its containers, unless live-restore keeps them).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting dockerd: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	e.mu.Lock()
	e.cmd, e.exited = cmd, exited
	e.mu.Unlock()

	cli, err := client.New(client.WithHost(e.Host))
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Ping(ctx, client.PingOptions{})
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("dockerd exited at start (%s); its log:\n%s", cmd.ProcessState, e.LogTail(30))
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dockerd does not answer at %s after %v: %v; its log:\n%s", e.Host, startTimeout, err, e.LogTail(30))
		}
	}
}

// LogTail returns the last n lines dockerd wrote.
func (e *Engine) LogTail(n int) string {
	b, _ := os.ReadFile(filepath.Join(e.Dir, "dockerd.log"))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Stop shuts dockerd down (SIGTERM, then SIGKILL after a minute) and waits
// for it and its containerd to end. Without live-restore dockerd stops its
// containers first.
func (e *Engine) Stop() error {
	e.mu.Lock()
	cmd, exited := e.cmd, e.exited
	e.cmd = nil
	e.mu.Unlock()
	if cmd == nil {
		return nil
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-exited
	}
	// dockerd stops the containerd it started; one left behind by a
	// killed dockerd is stopped here.
	killProcesses(func(cmdline string) bool {
		return strings.HasPrefix(cmdline, "containerd\x00") && strings.Contains(cmdline, e.Dir+"/")
	})
	return nil
}

// Restart stops dockerd and starts it again on the same directories.
func (e *Engine) Restart() error {
	if err := e.Stop(); err != nil {
		return err
	}
	return e.start()
}

// Running reports whether dockerd runs (it was started and not stopped).
func (e *Engine) Running() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cmd != nil
}

// Close removes every container (when dockerd runs), stops dockerd, kills
// what it left behind, unmounts what it mounted and removes its directory.
func (e *Engine) Close() error {
	if e.Running() {
		removeAllContainers(e.Host)
	}
	e.Stop()
	return cleanDir(e.Dir)
}

// removeAllContainers removes the engine's containers, running or not.
func removeAllContainers(host string) {
	cli, err := client.New(client.WithHost(host))
	if err != nil {
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return
	}
	for _, c := range res.Items {
		cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
	}
}

// Client returns a client of the engine, closed at the test's end.
func (e *Engine) Client(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.New(client.WithHost(e.Host))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

var shared struct {
	once   sync.Once
	engine *Engine
	err    error
}

// Shared returns the test binary's engine, starting it at the first call.
// It fails the test when the engine cannot start.
func Shared(t testing.TB) *Engine {
	t.Helper()
	shared.once.Do(func() { shared.engine, shared.err = Start(Options{}) })
	if shared.err != nil {
		t.Fatalf("starting a private Docker engine: %v", shared.err)
	}
	return shared.engine
}

// Close stops the shared engine, if one was started, and removes what it
// left and the binaries GoBinary built. Call it from TestMain after m.Run.
func Close() {
	if shared.engine != nil {
		shared.engine.Close()
	}
	removeBinaries()
}

// New starts an engine for t alone, closed when t ends.
func New(t testing.TB, opts Options) *Engine {
	t.Helper()
	e, err := Start(opts)
	if err != nil {
		t.Fatalf("starting a private Docker engine: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}
