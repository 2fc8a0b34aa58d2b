package e2e

import (
	"bufio"
	"bytes"
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

// readmeBlocks returns the README's indented code blocks, as written.
func readmeBlocks(t *testing.T) []string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			blocks = append(blocks, strings.TrimSpace(strings.Join(cur, "\n")))
			cur = nil
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "    "):
			cur = append(cur, strings.TrimPrefix(l, "    "))
		case strings.TrimSpace(l) == "" && len(cur) > 0:
			cur = append(cur, "")
		default:
			flush()
		}
	}
	flush()
	return blocks
}

func readmeBlock(t *testing.T, blocks []string, holding string) string {
	t.Helper()
	for _, b := range blocks {
		if strings.Contains(b, holding) {
			return b
		}
	}
	t.Fatalf("the README has no code block holding %q", holding)
	return ""
}

// The README's "Deploying an app" walkthrough, run as written (only its
// /tmp paths are moved into the test's own directory): v1, then v2 under
// traffic, then the history.
func TestREADMEWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("the walkthrough takes about a minute")
	}
	blocks := readmeBlocks(t)
	first := readmeBlock(t, blocks, "bin/bluegreen server &")
	second := readmeBlock(t, blocks, "echo v2 > /tmp/hello/VERSION")
	tmp := passableTempDir(t)
	move := strings.NewReplacer("/tmp/hello", tmp+"/hello", "/tmp/bg", tmp+"/bg")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	// A person types the next line once the server has started; a script
	// waits for it the same way.
	first = strings.Replace(first, "bin/bluegreen server &", "bin/bluegreen server &\nfor i in $(seq 300); do bin/bluegreen apps >/dev/null 2>&1 && break; sleep 0.1; done", 1)
	script := "set -e\n" + move.Replace(first) + "\n" +
		"curl -sf 127.0.0.1:8080/ | grep -q 'hello from v1'\n" +
		move.Replace(second) + "\n" +
		"curl -sf 127.0.0.1:8080/ | grep -q 'hello from v2'\n" +
		"bin/bluegreen history hello\n" +
		// What the walkthrough left in the background (the load, the
		// server) stops with the script.
		"kill $(jobs -p) 2>/dev/null || true\nwait\n"
	t.Cleanup(func() {
		// The server the walkthrough started in the background, by the pid
		// it wrote, then what it left running.
		data := tmp + "/bg"
		if in, err := server.ReadInfo(data); err == nil && in.PID > 0 {
			_ = syscall.Kill(in.PID, syscall.SIGTERM)
			testwait.For(t, 20*time.Second, "the walkthrough's server to stop", func() bool {
				st, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(in.PID), "stat"))
				return err != nil || strings.Contains(string(st), ") Z ") // gone, or a zombie nobody reaps
			})
		}
		stop := exec.Command(bin.bluegreen, "server", "--stop-all", "--data", data)
		if out, err := stop.CombinedOutput(); err != nil {
			t.Errorf("stopping what the walkthrough left: %v\n%s", err, out)
		}
	})
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = root
	// A file, not a pipe: the server the script leaves in the background
	// keeps its output open, and a pipe would wait for it.
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
	for _, want := range []string{"succeeded: revision 1 is live", "hello from v1", "released: revision 2 is live", "1 → 2"} {
		if !strings.Contains(text, want) {
			t.Errorf("the walkthrough's output lacks %q:\n%s", want, text)
		}
	}
	t.Logf("the walkthrough took %s", time.Since(start).Round(time.Second))
}
