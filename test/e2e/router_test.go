package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"bluegreen/internal/freeport"
	"bluegreen/internal/loadgen"
	"bluegreen/internal/testwait"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	return freeport.Must(t)
}

// serveFleet runs a backend that names its fleet in X-Fleet.
func serveFleet(t *testing.T, name string, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Fleet", name)
			io.WriteString(w, name)
		})
	}
	s := &http.Server{Handler: h}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return ln.Addr().String()
}

// routerProc is `bluegreen router` running as its own process.
type routerProc struct {
	cmd               *exec.Cmd
	admin, prod, test string
	token             string
	stderr            *lockedBuffer
}

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startRouterProc(t *testing.T, apps string) *routerProc {
	t.Helper()
	p := &routerProc{admin: freeAddr(t), prod: freeAddr(t), test: freeAddr(t), token: "t0ken", stderr: &lockedBuffer{}}
	file := filepath.Join(t.TempDir(), "routes.yaml")
	conf := fmt.Sprintf("admin: %s\nadmin_token: %s\nproduction: %s\ntest: %s\napps:\n%s", p.admin, p.token, p.prod, p.test, apps)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin.bluegreen, "router", "--config", file, "--log-format", "json")
	p.cmd.Stderr = p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.cmd.Wait()
		if t.Failed() {
			t.Logf("router log:\n%s", p.stderr)
		}
	})
	testwait.For(t, 10*time.Second, "router admin API", func() bool {
		code, _ := p.call("GET", "/healthz", "")
		return code == 200
	})
	return p
}

func (p *routerProc) call(method, path, body string) (int, string) {
	req, _ := http.NewRequest(method, "http://"+p.admin+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// swap is one routing table change as seen from outside the router: it took
// effect somewhere between sent and answered.
type swap struct {
	sent, answered int64
	live           string // the only fleet with weight
}

func TestSwitchUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("10 s of load")
	}
	blue, green := serveFleet(t, "blue", nil), serveFleet(t, "green", nil)
	p := startRouterProc(t, fmt.Sprintf(`  shop:
    fleets:
      blue:  { weight: 100, targets: [%q] }
      green: { weight: 0,   targets: [%q] }
    test_fleet: green
`, blue, green))

	records := filepath.Join(t.TempDir(), "records.txt")
	var loadOut bytes.Buffer
	load := exec.Command(bin.bgload, "-url", "http://"+p.prod+"/", "-rate", "2500", "-duration", "10s",
		"-c", "32", "-header", "X-Fleet", "-records", records)
	load.Stdout, load.Stderr = &loadOut, os.Stderr
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}

	// 1,000 swaps blue↔green while the load runs: one every 9 ms.
	table := func(live string) string {
		wb, wg := 100, 0
		if live == "green" {
			wb, wg = 0, 100
		}
		return fmt.Sprintf(`{"production":%q,"test":%q,"apps":{"shop":{"test_fleet":"green","fleets":{`+
			`"blue":{"weight":%d,"targets":[%q]},"green":{"weight":%d,"targets":[%q]}}}}}`, p.prod, p.test, wb, blue, wg, green)
	}
	swaps := []swap{{sent: 0, answered: 0, live: "blue"}}
	tick := time.NewTicker(9 * time.Millisecond)
	for i := range 1000 {
		<-tick.C
		live := "green"
		if i%2 == 1 {
			live = "blue"
		}
		s := swap{sent: time.Now().UnixNano(), live: live}
		if code, body := p.call("PUT", "/routes", table(live)); code != 200 {
			t.Fatalf("swap %d: %d %s", i, code, body)
		}
		s.answered = time.Now().UnixNano()
		swaps = append(swaps, s)
	}
	tick.Stop()
	if err := load.Wait(); err != nil {
		t.Fatalf("load process: %v", err)
	}
	var sum loadgen.Summary
	if err := json.Unmarshal(loadOut.Bytes(), &sum); err != nil {
		t.Fatalf("load summary %q: %v", loadOut.String(), err)
	}
	t.Logf("load: %d requests in %.1fs (%.0f req/s), %d failed, by fleet %v; 1000 swaps",
		sum.Sent, sum.Seconds, sum.Rate, sum.Failed, sum.ByValue)
	if sum.Failed != 0 {
		t.Fatalf("%d failed requests: %v", sum.Failed, sum.Errors)
	}
	if sum.Sent < 20000 || sum.Rate < 2000 {
		t.Fatalf("load too light to prove anything: %d requests at %.0f/s", sum.Sent, sum.Rate)
	}
	if sum.ByValue["blue"] < 1000 || sum.ByValue["green"] < 1000 {
		t.Fatalf("the swaps did not move traffic: %v", sum.ByValue)
	}
	checkServedByWeightedFleet(t, records, swaps)
}

// checkServedByWeightedFleet proves every response came from a fleet that had
// weight at some moment while its request was in flight. Table i was in force
// from (at the earliest) its PUT being sent until (at the latest) the next PUT
// was answered.
func checkServedByWeightedFleet(t *testing.T, records string, swaps []swap) {
	t.Helper()
	f, err := os.Open(records)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sort.Slice(swaps, func(i, j int) bool { return swaps[i].sent < swaps[j].sent })
	n, bad := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		start, _ := strconv.ParseInt(fields[0], 10, 64)
		end, _ := strconv.ParseInt(fields[1], 10, 64)
		fleet := fields[3]
		n++
		// the last table whose PUT was sent before the request ended
		i := sort.Search(len(swaps), func(i int) bool { return swaps[i].sent > end }) - 1
		ok := false
		for ; i >= 0; i-- {
			if swaps[i].live == fleet {
				ok = true
				break
			}
			// table i took effect by swaps[i].answered; earlier tables ended then
			if swaps[i].answered < start {
				break
			}
		}
		if !ok {
			bad++
			if bad < 5 {
				t.Errorf("request [%d, %d] was served by %s, which had no weight while it was in flight", start, end, fleet)
			}
		}
	}
	if n == 0 || bad > 0 {
		t.Fatalf("%d of %d responses came from a fleet without weight", bad, n)
	}
}

// rss reads a process's peak resident memory in KiB.
func peakRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.Fields(v)[0])
			return kb
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// zeros reads n zero bytes without holding them.
type zeros struct{ left int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.left == 0 {
		return 0, io.EOF
	}
	n := int64(len(p))
	if n > z.left {
		n = z.left
	}
	clear(p[:n])
	z.left -= n
	return int(n), nil
}

func TestGigabyteUploadAndDownloadInFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 2 GiB")
	}
	const size = 1 << 30
	mux := http.NewServeMux()
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		fmt.Fprint(w, n)
	})
	mux.HandleFunc("/download", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		io.Copy(w, &zeros{size})
	})
	be := serveFleet(t, "blue", mux)
	p := startRouterProc(t, fmt.Sprintf("  shop:\n    fleets:\n      blue: { weight: 100, targets: [%q] }\n", be))
	before := peakRSS(t, p.cmd.Process.Pid)

	// Upload, chunked (unknown length), then download.
	resp, err := http.Post("http://"+p.prod+"/upload", "application/octet-stream", io.NopCloser(&zeros{size}))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != strconv.Itoa(size) {
		t.Fatalf("upstream received %s bytes, want %d", got, size)
	}
	resp, err = http.Get("http://" + p.prod + "/download")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Fatalf("downloaded %d bytes: %v", n, err)
	}
	after := peakRSS(t, p.cmd.Process.Pid)
	t.Logf("router peak RSS: %d KiB before, %d KiB after moving 2 GiB", before, after)
	if after > 64*1024 {
		t.Fatalf("router peak RSS %d KiB after 2 GiB: bodies are being buffered", after)
	}
}

func TestSIGHUPReloadsTheRouteFile(t *testing.T) {
	blue, green := serveFleet(t, "blue", nil), serveFleet(t, "green", nil)
	p := startRouterProc(t, fmt.Sprintf("  shop:\n    fleets:\n      blue: { weight: 100, targets: [%q] }\n      green: { weight: 0, targets: [%q] }\n", blue, green))
	file := p.cmd.Args[3]
	conf, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	served := func() string {
		resp, err := http.Get("http://" + p.prod + "/")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		return resp.Header.Get("X-Fleet")
	}
	if got := served(); got != "blue" {
		t.Fatalf("before reload: %s", got)
	}

	swapped := strings.Replace(strings.Replace(string(conf), "weight: 100", "weight: X", 1), "weight: 0,", "weight: 100,", 1)
	swapped = strings.Replace(swapped, "weight: X", "weight: 0", 1)
	if err := os.WriteFile(file, []byte(swapped), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	testwait.For(t, 10*time.Second, "green to take the traffic after SIGHUP", func() bool { return served() == "green" })

	// A broken file is refused and the running table stays.
	if err := os.WriteFile(file, []byte(swapped+"    bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	testwait.For(t, 10*time.Second, "the reload to be refused in the log", func() bool {
		return strings.Contains(p.stderr.String(), "reload rejected; the running table stays")
	})
	if !strings.Contains(p.stderr.String(), "field bogus not found") {
		t.Fatalf("the log does not say what is wrong:\n%s", p.stderr)
	}
	if got := served(); got != "green" {
		t.Fatalf("after a refused reload: %s", got)
	}
}
