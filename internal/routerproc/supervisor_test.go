package routerproc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"bluegreen/internal/router"
)

func TestStartFromNothing(t *testing.T) {
	dir := stateDir(t)
	s, _ := start(t, dir, nil)
	ctx := context.Background()
	if s.Adopted() {
		t.Fatal("a router in an empty directory was adopted")
	}
	gen, err := s.Client().Health(ctx)
	if err != nil || gen != 1 {
		t.Fatalf("health: %d %v", gen, err)
	}
	cfg, err := router.LoadFile(filepath.Join(dir, RoutesFile))
	if err != nil || cfg.Admin != "unix:"+filepath.Join(dir, SocketFile) || len(cfg.Apps) != 0 {
		t.Fatalf("routes.yaml: %+v %v", cfg, err)
	}
	st, err := os.Stat(filepath.Join(dir, SocketFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v %v", st, err)
	}
	if pid := readPidFile(filepath.Join(dir, PidFile)); pid != s.Pid() || !routerAlive(pid, filepath.Join(dir, RoutesFile)) {
		t.Fatalf("router.pid %d, supervisor pid %d", pid, s.Pid())
	}
	if log := tailFile(filepath.Join(dir, LogFile), 4096); !strings.Contains(log, `"msg":"router ready"`) {
		t.Fatalf("router.log: %s", log)
	}
	// The router runs in a session of its own.
	if sid := sessionOf(t, s.Pid()); sid != s.Pid() {
		t.Fatalf("router session %d, want its own %d", sid, s.Pid())
	}

	// Its output goes to router.log and its input is /dev/null: nothing ties it
	// to the server's own descriptors.
	for fd, want := range map[string]string{"0": os.DevNull, "1": filepath.Join(dir, LogFile), "2": filepath.Join(dir, LogFile)} {
		if got, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", s.Pid(), fd)); err == nil && got != want {
			t.Errorf("router fd %s is %s, want %s", fd, got, want)
		}
	}

	// Closing the supervisor leaves the router serving.
	pid := s.Pid()
	s.Close()
	if !pidAlive(pid) {
		t.Fatal("Close stopped the router")
	}
	if _, err := NewClient("unix:"+filepath.Join(dir, SocketFile), "").Health(ctx); err != nil {
		t.Fatalf("router after Close: %v", err)
	}
}

func TestApplyCarriesTrafficAndKeepsTheFile(t *testing.T) {
	dir := stateDir(t)
	s, _ := start(t, dir, nil)
	ctx := context.Background()
	prod := freeAddr(t)
	cfg := oneApp(prod, backend(t, "blue", nil))
	gen, err := s.Apply(ctx, cfg)
	if err != nil || gen != 2 {
		t.Fatalf("apply: %d %v", gen, err)
	}
	if cfg.Admin != "" || cfg.Apps["shop"].Hosts != nil {
		t.Fatalf("Apply changed the caller's table: %+v", cfg)
	}
	mustFetch(t, "http://"+prod+"/", "blue")
	saved, err := router.LoadFile(filepath.Join(dir, RoutesFile))
	if err != nil || saved.Apps["shop"].Fleets["blue"].Targets[0] != cfg.Apps["shop"].Fleets["blue"].Targets[0] {
		t.Fatalf("routes.yaml after apply: %+v %v", saved, err)
	}
	running, rgen, err := s.Client().Routes(ctx)
	if err != nil || rgen != 2 || running.Production != prod {
		t.Fatalf("routes: %+v %d %v", running, rgen, err)
	}

	// A table the router refuses (its listener is taken) changes neither the
	// router nor the file.
	busy := freeAddrHeld(t)
	bad := oneApp(busy, cfg.Apps["shop"].Fleets["blue"].Targets[0])
	_, err = s.Apply(ctx, bad)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "opening listener "+busy) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("busy listener: %v", err)
	}
	if saved, err := router.LoadFile(filepath.Join(dir, RoutesFile)); err != nil || saved.Production != prod {
		t.Fatalf("routes.yaml after a refused table: %+v %v", saved, err)
	}
	// An invalid table is refused before anything is written or sent.
	invalid := oneApp(prod, "nohost")
	if _, err := s.Apply(ctx, invalid); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), `"nohost" is not host:port`) {
		t.Fatalf("invalid table: %v", err)
	}
	if g, _ := s.Client().Health(ctx); g != 2 {
		t.Fatalf("generation %d after refused tables, want 2", g)
	}
	withAdmin := oneApp(prod, "127.0.0.1:1")
	withAdmin.Admin = "127.0.0.1:9100"
	if _, err := s.Apply(ctx, withAdmin); err == nil || !strings.Contains(err.Error(), "admin") {
		t.Fatalf("foreign admin address: %v", err)
	}
}

// freeAddrHeld returns a loopback address that stays taken for the test.
func freeAddrHeld(t *testing.T) string {
	t.Helper()
	addr := freeAddr(t)
	held, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Close() })
	return addr
}

func TestAdoptAfterTheServerIsKilled(t *testing.T) {
	dir := stateDir(t)
	prod := freeAddr(t)
	tbl, _ := json.Marshal(oneApp(prod, backend(t, "blue", nil)))

	// A child process plays the server: it starts the router, pushes a table,
	// and is killed with SIGKILL.
	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), childEnv+"="+dir, childBinEnv+"="+bluegreenBin, childTableEnv+"="+string(tbl))
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var pid int
	var gen uint64
	select {
	case line := <-lines:
		if _, err := fmt.Sscanf(line, "ready %d %d", &pid, &gen); err != nil {
			t.Fatalf("child said %q", line)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the child never reported a running router")
	}
	mustFetch(t, "http://"+prod+"/", "blue")
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()

	// The router outlives its server, and its output did not depend on it.
	if !routerAlive(pid, filepath.Join(dir, RoutesFile)) {
		t.Fatal("the router died with the server")
	}
	mustFetch(t, "http://"+prod+"/", "blue")

	s, _ := start(t, dir, nil)
	if !s.Adopted() || s.Pid() != pid {
		t.Fatalf("adopted %v pid %d, want the running router %d", s.Adopted(), s.Pid(), pid)
	}
	if g, err := s.Client().Health(context.Background()); err != nil || g != gen {
		t.Fatalf("generation %d %v after adoption, want %d", g, err, gen)
	}
	mustFetch(t, "http://"+prod+"/", "blue")
	if g, err := s.Apply(context.Background(), oneApp(prod, backend(t, "green", nil))); err != nil || g != gen+1 {
		t.Fatalf("apply after adoption: %d %v", g, err)
	}
	mustFetch(t, "http://"+prod+"/", "green")
}

func TestConcurrentStartsShareOneRouter(t *testing.T) {
	dir := stateDir(t)
	sups := make([]*Supervisor, 3)
	var wg sync.WaitGroup
	for i := range sups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Start(context.Background(), Options{Dir: dir, Command: []string{bluegreenBin, "router"}, WatchInterval: -1,
				Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Error(err)
				return
			}
			sups[i] = s
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	started := 0
	for _, s := range sups {
		if !s.Adopted() {
			started++
		}
		if s.Pid() != sups[0].Pid() {
			t.Fatalf("pids %d and %d", s.Pid(), sups[0].Pid())
		}
	}
	if started != 1 {
		t.Fatalf("%d supervisors started a router, want 1", started)
	}
}

func TestWatchRestartsAKilledRouter(t *testing.T) {
	dir := stateDir(t)
	var calls atomic.Int32
	s, logs := start(t, dir, func(o *Options) {
		o.WatchInterval = 50 * time.Millisecond
		o.OnRestart = func() { calls.Add(1) }
	})
	ctx := context.Background()
	prod := freeAddr(t)
	if _, err := s.Apply(ctx, oneApp(prod, backend(t, "blue", nil))); err != nil {
		t.Fatal(err)
	}
	old := s.Pid()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Restarted():
	case <-time.After(30 * time.Second):
		t.Fatalf("no restart after the router was killed\n%s", logs)
	}
	if s.Pid() == old || !pidAlive(s.Pid()) || calls.Load() < 1 {
		t.Fatalf("pid %d (was %d), OnRestart calls %d", s.Pid(), old, calls.Load())
	}
	// The new router starts from the last table pushed.
	mustFetch(t, "http://"+prod+"/", "blue")
	v, err := s.Client().RoutesView(ctx)
	if err != nil || v.Table.Apps["shop"] == nil || v.Generation != 1 {
		t.Fatalf("table after restart: gen %d %v", v.Generation, err)
	}
	if !strings.Contains(logs.String(), "router is gone") {
		t.Fatalf("supervisor log does not tell of the restart:\n%s", logs)
	}
}

func TestStopRouterLeavesNoProcess(t *testing.T) {
	dir := stateDir(t)
	s, _ := start(t, dir, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	prod := freeAddr(t)
	if _, err := s.Apply(ctx, oneApp(prod, backend(t, "blue", nil))); err != nil {
		t.Fatal(err)
	}
	pid := s.Pid()
	if err := s.StopRouter(ctx); err != nil {
		t.Fatal(err)
	}
	if !gone(pid) {
		t.Fatalf("router pid %d still runs", pid)
	}
	if _, err := os.Stat(filepath.Join(dir, PidFile)); !os.IsNotExist(err) {
		t.Fatalf("router.pid left behind: %v", err)
	}
	if _, err := s.Client().Health(ctx); err == nil {
		t.Fatal("the admin API still answers")
	}
	if _, _, err := fetch("http://" + prod + "/"); err == nil {
		t.Fatal("the production listener still answers")
	}

	// The next start brings the last table back.
	s2, _ := start(t, dir, nil)
	if s2.Adopted() || s2.Pid() == pid {
		t.Fatalf("adopted %v pid %d after a stop", s2.Adopted(), s2.Pid())
	}
	mustFetch(t, "http://"+prod+"/", "blue")
}

func TestStartFailureQuotesTheLog(t *testing.T) {
	dir := stateDir(t)
	bad := "admin: unix:" + filepath.Join(dir, SocketFile) + "\napps:\n  shop:\n    fleets: {}\n"
	if err := os.WriteFile(filepath.Join(dir, RoutesFile), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), Options{Dir: dir, Command: []string{bluegreenBin, "router"}})
	if err == nil || !strings.Contains(err.Error(), "the router exited at start") ||
		!strings.Contains(err.Error(), "apps.shop.fleets: an app needs at least one fleet") {
		t.Fatalf("start with a broken route file: %v", err)
	}

	long := filepath.Join(dir, strings.Repeat("d", 120))
	if _, err := Start(context.Background(), Options{Dir: long}); err == nil || !strings.Contains(err.Error(), "too long for a unix socket") {
		t.Fatalf("long directory: %v", err)
	}
}

// sessionOf reads a process's session id from /proc.
func sessionOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	// After "pid (comm)": state ppid pgrp session ...
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	var sid int
	fmt.Sscan(fields[3], &sid)
	return sid
}
