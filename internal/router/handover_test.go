package router

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bluegreen/internal/testwait"
)

// handoverRouter starts a router on a fresh production listener with its
// admin API on a unix socket, and returns it with the socket's path.
func handoverRouter(t *testing.T, backend, token string) (*Router, *Config, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "bgho-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "admin.sock")
	cfg := oneFleet(backend)
	cfg.Production = freeAddr(t)
	cfg.Admin, cfg.AdminToken = "unix:"+sock, token
	r := startRouter(t, cfg)
	if _, err := r.ListenAdmin(cfg.Admin); err != nil {
		t.Fatal(err)
	}
	return r, cfg, sock
}

// TestHandoverAbandonedLeavesTheRouterServing takes the listeners and gives
// up: the running router keeps serving and takes tables again.
func TestHandoverAbandonedLeavesTheRouterServing(t *testing.T) {
	be := newBackend(t, "blue")
	r, cfg, sock := handoverRouter(t, be.addr(), "")
	p, err := TakeOver(context.Background(), sock, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Listeners(); strings.Join(got, " ") != strings.Join(sortedKeys(map[string]bool{cfg.Production: true, cfg.Test: true}), " ") || p.Pid != os.Getpid() || p.Table.Apps["shop"] == nil {
		t.Fatalf("hand-over: listeners %v, pid %d, table %+v", got, p.Pid, p.Table)
	}
	if _, err := r.Apply(cfg); err == nil || !strings.Contains(err.Error(), "handing its listeners over") {
		t.Fatalf("a table during the hand-over: %v, want it refused", err)
	}
	p.Abandon()
	testwait.For(t, 10*time.Second, "the router to take tables again", func() bool { _, err := r.Apply(cfg); return err == nil })
	resp, body := get(t, &http.Client{Timeout: 5 * time.Second}, "http://"+cfg.Production+"/")
	if resp.StatusCode != 200 || body != "blue" {
		t.Fatalf("after an abandoned hand-over: %d %q", resp.StatusCode, body)
	}
	select {
	case <-r.HandedOver():
		t.Fatal("the router counts an abandoned hand-over as done")
	default:
	}
}

// TestHandoverNeedsTheToken refuses a successor without the admin token,
// and says why.
func TestHandoverNeedsTheToken(t *testing.T) {
	be := newBackend(t, "blue")
	_, _, sock := handoverRouter(t, be.addr(), "s3cret-token-for-the-admin-api")
	if _, err := TakeOver(context.Background(), sock, ""); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("hand-over without the token: %v, want a 401", err)
	}
	p, err := TakeOver(context.Background(), sock, "s3cret-token-for-the-admin-api")
	if err != nil {
		t.Fatalf("hand-over with the token: %v", err)
	}
	p.Abandon()
}

// TestHandoverBetweenRouters hands the listeners from one router to another
// in the same process: the new one serves them and answers the ACME
// challenges the old one did, the old one stops accepting and says it was
// handed over.
func TestHandoverBetweenRouters(t *testing.T) {
	be := newBackend(t, "blue")
	old, cfg, sock := handoverRouter(t, be.addr(), "")
	old.SetChallenge("tok", "tok.thumbprint")
	p, err := TakeOver(context.Background(), sock, "")
	if err != nil {
		t.Fatal(err)
	}
	r := New(Options{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Shutdown(ctx)
	})
	r.Inherit(p)
	if _, err := r.Apply(p.Table); err != nil {
		t.Fatal(err)
	}
	r.CloseUnused()
	r.edge.mu.Lock()
	got := r.edge.challenges["tok"]
	r.edge.mu.Unlock()
	if got != "tok.thumbprint" {
		t.Fatalf("the ACME challenge after the hand-over: %q, want it carried over", got)
	}
	if _, err := r.ListenAdminReplacing(cfg.Admin); err != nil {
		t.Fatal(err)
	}
	if err := p.Finish(r); err != nil {
		t.Fatal(err)
	}
	select {
	case <-old.HandedOver():
	case <-time.After(10 * time.Second):
		t.Fatal("the old router was not told it was handed over")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	old.Shutdown(ctx)
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("the admin socket after the old router stopped: %v", err)
	}
	resp, body := get(t, &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}, "http://"+cfg.Production+"/")
	if resp.StatusCode != 200 || body != "blue" {
		t.Fatalf("through the new router: %d %q", resp.StatusCode, body)
	}
	p2, err := TakeOver(context.Background(), sock, "")
	if err != nil || p2.Pid != os.Getpid() {
		t.Fatalf("the new router does not answer on the admin socket: %v", err)
	}
	p2.Abandon()
}

// TestHandoverRefusedWhilePaused refuses a successor while an app is
// paused: the requests the pause holds would be answered 503 when the old
// router drains, since the resume would reach the new one.
func TestHandoverRefusedWhilePaused(t *testing.T) {
	be := newBackend(t, "blue")
	r, cfg, sock := handoverRouter(t, be.addr(), "")
	cfg.Apps["shop"].Pause = &PauseConfig{MaxWait: Duration(time.Minute)}
	if _, err := r.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	_, err := TakeOver(context.Background(), sock, "")
	if err == nil || !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "app shop is paused") {
		t.Fatalf("hand-over while paused: %v, want a 409 that names the app", err)
	}
	cfg.Apps["shop"].Pause = nil
	if _, err := r.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	p, err := TakeOver(context.Background(), sock, "")
	if err != nil {
		t.Fatalf("hand-over once resumed: %v", err)
	}
	p.Abandon()
}
