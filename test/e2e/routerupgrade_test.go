package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"bluegreen/internal/testwait"
	"bluegreen/internal/testws"
)

// TestRouterUpgradeUnderLoad replaces the server's router process twice
// while two bgload processes send requests, one on new connections for every
// request and one on kept-alive connections: first with `bluegreen router
// upgrade`, then by upgrading bluegreen itself (a new binary in place of the
// server's, and the server restarted, which hands the old router's
// listeners to a router of the new binary). No request fails and no
// connection is refused; a WebSocket opened before finishes on the router it
// was opened on, which exits once it is closed.
func TestRouterUpgradeUnderLoad(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "bluegreen")
	copyBinary(t, bin.bluegreen, exe, false)
	e := startDeployEnv(t, exe)
	e.deployLive("v1", e.specFor(quick))
	url := "http://" + e.prod + "/"
	testwait.For(t, 10*time.Second, "v1 to answer on production", func() bool {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})

	first := routerPid(t, e)
	ws, wsConn := testws.Dial(t, e.prod)
	testws.Echo(t, ws, "before")

	fresh := startBgload(t, url, "-new-conns")
	kept := startBgload(t, url)
	testwait.For(t, 10*time.Second, "load before the upgrade", func() bool { return fresh.sent() > 200 && kept.sent() > 200 })

	// 1. The command.
	up := exec.Command(exe, "router", "upgrade", "--data", e.data)
	out, err := up.CombinedOutput()
	if err != nil {
		t.Fatalf("bluegreen router upgrade: %v\n%s", err, out)
	}
	t.Logf("bluegreen router upgrade: %s", strings.TrimSpace(string(out)))
	second := routerPid(t, e)
	if second == first || !strings.Contains(string(out), fmt.Sprintf("pid %d took over from pid %d", second, first)) {
		t.Fatalf("after the upgrade router.pid is %d (was %d); the command said %s", second, first, out)
	}
	mark := fresh.sent()
	testwait.For(t, 10*time.Second, "load through the new router", func() bool { return fresh.sent() > mark+1000 })
	if !alive(first) {
		t.Fatalf("the first router (pid %d) exited with a WebSocket open", first)
	}
	testws.Echo(t, ws, "after the first upgrade")
	if pid := socketOwner(t, wsConn, first, second); pid != first {
		t.Fatalf("the WebSocket is served by pid %d, want the router it was opened on, %d", pid, first)
	}

	// 2. A new bluegreen binary, and the server restarted on it.
	copyBinary(t, bin.bluegreen, exe, true)
	e.killServer()
	swap := time.Now()
	e.startServer()
	restart := time.Since(swap)
	testwait.For(t, 20*time.Second, "the restarted server's router to replace the old build", func() bool {
		p := routerPid(t, e)
		return p != second && p != 0 && alive(p)
	})
	third := routerPid(t, e)
	mark = fresh.sent()
	testwait.For(t, 10*time.Second, "load through the router of the new binary", func() bool { return fresh.sent() > mark+1000 })
	if !strings.Contains(e.srvLog.String(), "router upgraded") {
		t.Fatalf("the server did not say it upgraded the router:\n%s", e.srvLog.String())
	}

	testws.Echo(t, ws, "after the second upgrade")
	if pid := socketOwner(t, wsConn, first, second, third); pid != first {
		t.Fatalf("the WebSocket is served by pid %d after both upgrades, want %d", pid, first)
	}
	ws.Close(websocket.StatusNormalClosure, "done")
	testwait.For(t, 40*time.Second, "the replaced routers to exit", func() bool { return !alive(first) && !alive(second) })

	for name, l := range map[string]*bgload{"new connections": fresh, "kept-alive connections": kept} {
		s := l.stop()
		t.Logf("bgload on %s: %d requests, %d failed, %d refused, %.0f/s over %.1fs", name, s.Sent, s.Failed, s.Refused, s.Rate, s.Seconds)
		if s.Failed != 0 || s.Refused != 0 || s.Sent == 0 {
			t.Errorf("bgload on %s across the upgrades: %d requests, %d failed, %d refused: %v", name, s.Sent, s.Failed, s.Refused, s.Errors)
		}
	}
	t.Logf("routers: %d → %d (command) → %d (new binary, server restarted in %s)", first, second, third, restart.Round(time.Millisecond))

	// The server drives the router it adopted: a deployment switches it.
	e.deployLive("v2", e.specFor(quick))
	testwait.For(t, 10*time.Second, "v2 to answer on production", func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.Header.Get("X-Version") == "v2"
	})
	if p := routerPid(t, e); p != third {
		t.Fatalf("router.pid is %d after the deployment, want %d", p, third)
	}
}

// copyBinary writes the program at from to to, through a rename so that a
// running copy is not touched; changed appends a byte, which makes another
// build of the same program.
func copyBinary(t *testing.T, from, to string, changed bool) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if changed {
		b = append(b, 0)
	}
	tmp := to + ".tmp"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, to); err != nil {
		t.Fatal(err)
	}
}

func routerPid(t *testing.T, e *deployEnv) int {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(e.data, "router", "router.pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// socketOwner returns which of pids holds the router's side of the client
// connection c (0 when none does), from the kernel's socket table.
func socketOwner(t *testing.T, c net.Conn, pids ...int) int {
	t.Helper()
	local, remote := c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr)
	hex := func(a *net.TCPAddr) string {
		ip := a.IP.To4()
		return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], a.Port)
	}
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	want, inode := hex(remote)+" "+hex(local), ""
	for _, line := range strings.Split(string(b), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 9 && f[1]+" "+f[2] == want {
			inode = f[9]
		}
	}
	for _, pid := range pids {
		fds, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
		for _, fd := range fds {
			if l, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name()); inode != "" && l == "socket:["+inode+"]" {
				return pid
			}
		}
	}
	return 0
}

// bgload is a bgload process whose summary the test reads at the end; its
// requests are counted from its records file as they are written.
type bgload struct {
	t       *testing.T
	cmd     *exec.Cmd
	out     *lockedBuffer
	records string
	done    chan struct{}
}

type bgloadSummary struct {
	Sent    int      `json:"sent"`
	Failed  int      `json:"failed"`
	Refused int      `json:"refused"`
	Seconds float64  `json:"seconds"`
	Rate    float64  `json:"rate"`
	Errors  []string `json:"errors"`
}

func startBgload(t *testing.T, url string, more ...string) *bgload {
	t.Helper()
	l := &bgload{t: t, out: &lockedBuffer{}, records: filepath.Join(t.TempDir(), "records"), done: make(chan struct{})}
	args := append([]string{"-url", url, "-rate", "500", "-duration", "2m", "-c", "8", "-records", l.records}, more...)
	l.cmd = exec.Command(bin.bgload, args...)
	l.cmd.Stdout, l.cmd.Stderr = l.out, l.out
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = l.cmd.Wait(); close(l.done) }()
	t.Cleanup(func() { _ = l.cmd.Process.Kill(); <-l.done })
	return l
}

// sent is about how many requests ended so far (the records file is
// written through a buffer, a few kilobytes at a time).
func (l *bgload) sent() int {
	st, err := os.Stat(l.records)
	if err != nil {
		return 0
	}
	return int(st.Size() / 45) // a line is about 45 bytes
}

func (l *bgload) stop() bgloadSummary {
	l.t.Helper()
	_ = l.cmd.Process.Signal(os.Interrupt)
	select {
	case <-l.done:
	case <-time.After(30 * time.Second):
		l.t.Fatal("bgload did not stop")
	}
	var s bgloadSummary
	if err := json.Unmarshal([]byte(l.out.String()), &s); err != nil {
		l.t.Fatalf("bgload's summary: %v\n%s", err, l.out.String())
	}
	return s
}
