package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"bluegreen/internal/server"
	"bluegreen/internal/testwait"
)

// The README's "Deploying a stack", run as written (its /tmp paths moved
// into the test's own directory), on a server of its own: the example stack
// at v1, then v2 under traffic.
func TestREADMEStack(t *testing.T) {
	if testing.Short() {
		t.Skip("the walkthrough takes about a minute")
	}
	blocks := readmeBlocks(t)
	first := readmeBlock(t, blocks, "go build -o /tmp/shop/stack")
	second := readmeBlock(t, blocks, "echo v2 > /tmp/shop/VERSION")
	tmp := passableTempDir(t)
	data := tmp + "/bg"
	move := strings.NewReplacer("/tmp/shop", tmp+"/shop")
	build := "go build -o bin/bluegreen ./cmd/bluegreen"
	if !strings.Contains(first, build) {
		t.Fatalf("the README's stack block does not build bin/bluegreen:\n%s", first)
	}
	// "With the server above running": the walkthrough's server, here one
	// of its own, started as a person would once the binary is built.
	first = strings.Replace(first, build, build+"\nbin/bluegreen server --api 127.0.0.1:0 &\n"+
		"for i in $(seq 300); do bin/bluegreen apps >/dev/null 2>&1 && break; sleep 0.1; done", 1)
	script := "set -e\nexport BLUEGREEN_DATA=" + data + "\n" + move.Replace(first) + "\n" +
		"curl -sf 127.0.0.1:8090/ | grep -q 'web v1, api v1'\n" +
		"curl -sf 127.0.0.1:8090/api/version | grep -qx v1\n" +
		move.Replace(second) + "\n" +
		"curl -sf 127.0.0.1:8090/ | grep -q 'web v2, api v2'\n" +
		"kill $(jobs -p) 2>/dev/null || true\nwait\n"
	t.Cleanup(func() {
		if in, err := server.ReadInfo(data); err == nil && in.PID > 0 {
			_ = syscall.Kill(in.PID, syscall.SIGTERM)
			testwait.For(t, 20*time.Second, "the walkthrough's server to stop", func() bool {
				st, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(in.PID), "stat"))
				return err != nil || strings.Contains(string(st), ") Z ")
			})
		}
		stop := exec.Command(bin.bluegreen, "server", "--stop-all", "--data", data)
		if out, err := stop.CombinedOutput(); err != nil {
			t.Errorf("stopping what the walkthrough left: %v\n%s", err, out)
		}
	})
	_, file, _, _ := runtime.Caller(0)
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
	outFile, err := os.Create(filepath.Join(t.TempDir(), "walkthrough.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer outFile.Close()
	cmd.Stdout, cmd.Stderr = outFile, outFile
	start := time.Now()
	runErr := cmd.Run()
	b, _ := os.ReadFile(outFile.Name())
	text := string(b)
	if runErr != nil {
		t.Fatalf("the walkthrough failed: %v\n%s", runErr, text)
	}
	for _, want := range []string{"succeeded: revision 1 is live", "web v1, api v1", "released: revision 2 is live", "services:", "/api"} {
		if !strings.Contains(text, want) {
			t.Errorf("the walkthrough's output lacks %q:\n%s", want, text)
		}
	}
	t.Logf("the stack walkthrough took %s", time.Since(start).Round(time.Second))
}
