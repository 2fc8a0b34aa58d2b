package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"bluegreen/internal/freeport"
	"bluegreen/internal/testwait"
)

// TestAppAnswersAndStops builds the instances' C program, starts it on a
// free port and checks what the router and the benchmark rely on: 200 on
// the health check and on any other path (with the revision), several
// requests on one connection, one thread, and an exit on SIGTERM.
func TestAppAnswersAndStops(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "app")
	if err := buildApp(context.Background(), filepath.Join("app", "app.c"), bin); err != nil {
		t.Fatal(err)
	}
	addr := freeport.Must(t)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin)
	cmd.Env = []string{"PORT=" + port, "BG_REVISION=r7"}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })

	hc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	testwait.For(t, 10*time.Second, "the app to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	for path, want := range map[string]string{"/healthz": "ok\n", "/": "revision r7\n", "/some/path?q=1": "revision r7\n"} {
		for range 3 { // on one kept-alive connection
			resp, err := hc.Get("http://" + addr + path)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != want {
				t.Fatalf("GET %s: %d %q, want 200 %q", path, resp.StatusCode, b, want)
			}
		}
	}
	st, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status")
	if err == nil && !strings.Contains(string(st), "\nThreads:\t1\n") {
		t.Errorf("the app runs more than one thread:\n%s", st)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after SIGTERM: %v, want exit status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the app did not exit within 10s of SIGTERM")
	}
}
