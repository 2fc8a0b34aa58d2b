package e2e

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/server"
	"bluegreen/internal/spec"
	"bluegreen/internal/testwait"
)

// procStatus reads a field of /proc/PID/status, in kB for memory fields.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// openFiles counts the descriptors a process has open.
func openFiles(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// dirEntries lists a directory, empty when it does not exist.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// tarGzOf packs files, each with its mode, into a .tar.gz.
func tarGzOf(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, data := range files {
		mode := int64(0o644)
		if name == "run" {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// smallBundle is a valid revision of app shop without the hello binary.
func smallBundle(t *testing.T, note string) []byte {
	return tarGzOf(t, map[string][]byte{
		spec.FileName: []byte("app: shop\nprocess:\n  command: [./run]\n"),
		"run":         []byte("#!/bin/sh\n# " + note + "\n"),
	})
}

func wantAPIError(t *testing.T, what string, err error, status int, code string, mentions ...string) *api.Error {
	t.Helper()
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != status || ae.Code != code {
		t.Fatalf("%s: %v; want %d %s", what, err, status, code)
	}
	for _, m := range mentions {
		if !strings.Contains(ae.Message, m) {
			t.Errorf("%s: %q does not mention %q", what, ae.Message, m)
		}
	}
	return ae
}

// A bundle of a few MB holding a 50 MB bluegreen.yaml is refused, with the
// file and the bound named, before the spec is read: the server's memory
// stays low and nothing is stored.
func TestSpecBombUploadIsRefused(t *testing.T) {
	e := newDeployEnv(t)
	var pad strings.Builder
	pad.WriteString("app: shop\nprocess:\n  command: [./hello]\nx-pad:\n")
	for i := 0; pad.Len() < 50<<20; i++ {
		fmt.Fprintf(&pad, "  - item-%d\n", i)
	}
	bundle := tarGzOf(t, map[string][]byte{spec.FileName: []byte(pad.String())})
	before := procStatus(t, e.srv.Process.Pid, "VmHWM")

	_, err := e.api.UploadRevision(context.Background(), bytes.NewReader(bundle), "bomb")
	wantAPIError(t, "the spec bomb", err, 413, api.CodeTooLarge, spec.FileName+": the file is 52428", "a spec may be at most 262144 bytes")

	hwm := procStatus(t, e.srv.Process.Pid, "VmHWM")
	t.Logf("upload of %d bytes holding a %d-byte %s: refused; server VmHWM %d MiB before, %d MiB after",
		len(bundle), pad.Len(), spec.FileName, before>>10, hwm>>10)
	if hwm > 256<<10 {
		t.Errorf("the server's peak memory reached %d MiB", hwm>>10)
	}
	if _, err := e.api.App(context.Background(), "shop"); !isAPIStatus(err, 404) {
		t.Errorf("app shop after the refused upload: %v; want 404", err)
	}
	for _, dir := range []string{"bundles/sha256", "bundles/tmp", "revisions"} {
		if left := dirEntries(t, filepath.Join(e.data, dir)); len(left) != 0 {
			t.Errorf("%s holds %v after the refused upload", dir, left)
		}
	}
	// bluegreen validate refuses the same file from its size.
	file := filepath.Join(t.TempDir(), spec.FileName)
	if err := os.WriteFile(file, []byte(pad.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin.bluegreen, "validate", "-f", file).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), file+": the file is 52428") || !strings.Contains(string(out), "at most 262144 bytes") {
		t.Errorf("validate of the bomb: %v\n%s", err, out)
	}
}

func isAPIStatus(err error, status int) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.Status == status
}

// TestHelperFlood is the connection flood of TestConnectionFloodLeavesTheEngineItsDescriptors,
// run as its own process: it does nothing unless BG_FLOOD_ADDR is set.
func TestHelperFlood(t *testing.T) {
	addr := os.Getenv("BG_FLOOD_ADDR")
	if addr == "" {
		return
	}
	conns, _ := strconv.Atoi(os.Getenv("BG_FLOOD_CONNS"))
	flood(addr, conns, 3*time.Minute, 200000)
	os.Exit(0)
}

// flood holds conns connections to addr, half of them idle and half
// sending a request's headers a byte a second; a connection the server
// closes is opened again a second later. It reports what it holds every
// half second, and stops after d or dials dials.
func flood(addr string, conns int, d time.Duration, dials int64) {
	end := time.Now().Add(d)
	var dialed, held, closed atomic.Int64
	for i := range conns {
		slow := i%2 == 1
		go func() {
			// The attacker's pace: one connection attempt a second at most.
			pace := time.NewTicker(time.Second)
			defer pace.Stop()
			for ; time.Now().Before(end) && dialed.Add(1) <= dials; <-pace.C {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					continue
				}
				held.Add(1)
				if slow {
					go func() {
						// A byte of headers a second, never the blank line.
						drip := time.NewTicker(time.Second)
						defer drip.Stop()
						io.WriteString(c, "GET /api/v1/apps HTTP/1.1\r\nHost: flood\r\n")
						for b := byte('a'); ; b = 'a' + (b-'a'+1)%26 {
							<-drip.C
							if _, err := c.Write([]byte{b}); err != nil {
								return
							}
						}
					}()
				}
				io.Copy(io.Discard, c)
				c.Close()
				held.Add(-1)
				closed.Add(1)
			}
		}()
	}
	report := time.NewTicker(500 * time.Millisecond)
	defer report.Stop()
	for ; time.Now().Before(end); <-report.C {
		fmt.Printf("flood: held %d dialed %d closed %d\n", held.Load(), dialed.Load(), closed.Load())
	}
}

// limitedBinary is a script that runs bluegreen with at most nofile open
// files, soft and hard, so that the server cannot raise its limit.
func limitedBinary(t *testing.T, nofile int) string {
	t.Helper()
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Fatal("prlimit (util-linux) is not installed: scripts/setup.sh installs it")
	}
	script := filepath.Join(t.TempDir(), "bluegreen-limited")
	body := fmt.Sprintf("#!/bin/sh\nexec %s --nofile=%d:%d %s \"$@\"\n", prlimit, nofile, nofile, bin.bluegreen)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

// A flood of idle and slow connections from another process, against a
// server limited to 256 open files, neither starves the engine (a hook
// during the flood runs, the deployment succeeds) nor locks out callers
// with a token.
func TestConnectionFloodLeavesTheEngineItsDescriptors(t *testing.T) {
	e := startDeployEnv(t, limitedBinary(t, 256))
	pid := e.srv.Process.Pid
	if n := procLimit(t, pid); n != 256 {
		t.Fatalf("the server's open-files limit is %d, want 256", n)
	}
	e.deployLive("v1", e.specFor(quick))
	idle := openFiles(t, pid)

	info, err := server.ReadInfo(e.data)
	if err != nil {
		t.Fatal(err)
	}
	fl := exec.Command(os.Args[0], "-test.run=^TestHelperFlood$", "-test.count=1")
	fl.Env = append(os.Environ(), "BG_FLOOD_ADDR="+info.API, "BG_FLOOD_CONNS=400")
	flOut := &lockedBuffer{}
	fl.Stdout, fl.Stderr = flOut, flOut
	if err := fl.Start(); err != nil {
		t.Fatal(err)
	}
	flDone := make(chan struct{})
	go func() { fl.Wait(); close(flDone) }()
	t.Cleanup(func() { fl.Process.Kill(); <-flDone })
	lastFlood := func() string {
		lines := strings.Split(strings.TrimSpace(flOut.String()), "\n")
		return lines[len(lines)-1]
	}
	testwait.For(t, 60*time.Second, "every flood connection to have been opened", func() bool {
		var held, dialed int
		fmt.Sscanf(lastFlood(), "flood: held %d dialed %d", &held, &dialed)
		return dialed >= 400
	})
	flooded := openFiles(t, pid)
	if !strings.Contains(e.srvLog.String(), "at its connection cap") {
		t.Errorf("the server did not log that the API reached its connection cap")
	}

	// Callers with a token get their answers, each on a new connection.
	fresh := api.NewClient(e.api.Base)
	fresh.Token = e.api.Token
	fresh.HTTP = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	for i := range 20 {
		if _, err := fresh.App(context.Background(), "shop"); err != nil {
			t.Fatalf("authenticated call %d during the flood: %v (%s)", i+1, err, lastFlood())
		}
	}

	// A deployment whose hook opens files while the flood goes on.
	gates := t.TempDir()
	hooks := "hooks:\n  validate_service: [{ run: ./hooks/gate.sh }, { run: ./hooks/files.sh }]\n"
	files := map[string]string{
		"hooks/gate.sh":  gateHook(gates),
		"hooks/files.sh": "#!/bin/sh\nset -e\nd=$(mktemp -d)\nfor i in $(seq 1 50); do echo $i > \"$d/f$i\"; done\ncat \"$d\"/f* > /dev/null\nrm -r \"$d\"\necho files ok\n",
	}
	d := e.deploy("v2", e.specFor(quick+hooks), files)
	e.waitPhase(d.ID, 60*time.Second, "Validating")
	testwait.For(t, 30*time.Second, "the gate hook to run", func() bool { return len(hookProcesses(t, e.data, "gate.sh")) > 0 })
	during := openFiles(t, pid)
	openGate(t, gates, "validate_service")
	d = e.waitEnd(d.ID, 90*time.Second)
	if d.Outcome != "succeeded" {
		t.Fatalf("the deployment during the flood: %s (%s)\n%s\nflood: %s", d.Outcome, d.Reason, e.eventLog(d.ID), lastFlood())
	}
	if _, err := fresh.App(context.Background(), "shop"); err != nil {
		t.Fatalf("authenticated call after the deployment: %v", err)
	}
	if log := e.srvLog.String() + e.eventLog(d.ID); strings.Contains(log, "too many open files") {
		t.Errorf("the server ran out of descriptors:\n%s", log)
	}
	t.Logf("open files of the server (limit 256): %d idle, %d flooded, %d with the hook running; %s", idle, flooded, during, lastFlood())
	for _, line := range strings.Split(e.srvLog.String(), "\n") {
		if strings.Contains(line, `"API limits"`) || strings.Contains(line, "connection cap") {
			t.Logf("server: %s", line)
		}
	}
}

// procLimit is a process's soft limit on open files.
func procLimit(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 4 && f[0] == "Max" && f[1] == "open" && f[2] == "files" {
			n, _ := strconv.Atoi(f[3])
			return n
		}
	}
	t.Fatal("no open files limit")
	return 0
}

// zipBomb is a zip of n entries of size zero bytes each, deflated once and
// stored n times: small on the wire, n*size unpacked.
func zipBomb(t *testing.T, n int, size int64) []byte {
	t.Helper()
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, flate.BestCompression)
	zeros := make([]byte, 1<<20)
	crc := crc32.NewIEEE()
	for left := size; left > 0; left -= int64(len(zeros)) {
		fw.Write(zeros[:min(left, int64(len(zeros)))])
		crc.Write(zeros[:min(left, int64(len(zeros)))])
	}
	fw.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := range n {
		w, err := zw.CreateRaw(&zip.FileHeader{Name: fmt.Sprintf("zeros%d", i), Method: zip.Deflate,
			CRC32: crc.Sum32(), CompressedSize64: uint64(comp.Len()), UncompressedSize64: uint64(size)})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(comp.Bytes())
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawUpload posts body as a bundle and returns the status, Retry-After and
// the error's code.
type uploadResult struct {
	status     int
	retryAfter string
	body       string
}

func rawUpload(e *deployEnv, body io.Reader) uploadResult {
	req, err := http.NewRequest("POST", e.api.Base+"/api/v1/revisions", body)
	if err != nil {
		return uploadResult{status: -1, body: err.Error()}
	}
	req.Header.Set("Authorization", "Bearer "+e.api.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return uploadResult{status: -1, body: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return uploadResult{resp.StatusCode, resp.Header.Get("Retry-After"), string(b)}
}

// Six zip bombs at once, while two uploads are being received: two wait
// for a slot, four are told to come back later, and the two that wait are
// refused from what they declare, without unpacking.
func TestConcurrentUploadsAreBounded(t *testing.T) {
	e := newDeployEnv(t)
	tmp := filepath.Join(e.data, "bundles", "tmp")
	type held struct {
		w    *io.PipeWriter
		rest []byte
		done chan uploadResult
	}
	var holders []held
	for i := range 2 {
		b := smallBundle(t, "held "+strconv.Itoa(i))
		pr, pw := io.Pipe()
		h := held{w: pw, rest: b[len(b)/2:], done: make(chan uploadResult, 1)}
		go func() { h.done <- rawUpload(e, pr) }()
		if _, err := pw.Write(b[:len(b)/2]); err != nil {
			t.Fatal(err)
		}
		holders = append(holders, h)
	}
	testwait.For(t, 30*time.Second, "two uploads being received", func() bool { return len(dirEntries(t, tmp)) == 2 })

	bomb := zipBomb(t, 8, 256<<20) // 2 GiB unpacked
	results := make(chan uploadResult, 6)
	for range 6 {
		go func() { results <- rawUpload(e, bytes.NewReader(bomb)) }()
	}
	for range 4 {
		r := <-results
		if r.status != 503 || r.retryAfter == "" || !strings.Contains(r.body, `"busy"`) {
			t.Errorf("an upload past the queue: %d, Retry-After %q: %s", r.status, r.retryAfter, r.body)
		}
	}
	if left := dirEntries(t, tmp); len(left) != 2 {
		t.Errorf("temporary files while two uploads run: %v", left)
	}
	for _, h := range holders {
		h.w.Write(h.rest)
		h.w.Close()
		if r := <-h.done; r.status != 201 {
			t.Errorf("a held upload: %d %s", r.status, r.body)
		}
	}
	for range 2 {
		r := <-results
		if r.status != 413 || !strings.Contains(r.body, "declares more than 1073741824 bytes in total") {
			t.Errorf("a bomb that waited: %d %s", r.status, r.body)
		}
	}
	if left := dirEntries(t, tmp); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	t.Logf("six zip bombs of %d bytes (2 GiB unpacked each): 4 answered 503 busy, 2 refused 413 without being unpacked", len(bomb))
}

// A full disk under the bundle store is the server's failure: 507, with
// the reason, and a line in the server's log; the next upload that fits
// goes through.
func TestFullDiskAnswersUploadsWith507(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	bundles := filepath.Join(data, "bundles")
	if err := os.MkdirAll(bundles, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", bundles).CombinedOutput(); err != nil {
		t.Fatalf("mounting a 2 MiB tmpfs (the tests run as root): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", bundles).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", bundles, err, out)
		}
	})
	e := &deployEnv{t: t, data: data, prod: freeAddr(t), test: freeAddr(t), binary: bin.bluegreen, args: []string{"--run-as", "root"}}
	t.Cleanup(e.teardown)
	e.startServer()

	// Incompressible bytes, the same every run.
	random := func(n int) []byte {
		b := make([]byte, n)
		seed := uint32(2463534242)
		for i := range b {
			seed ^= seed << 13
			seed ^= seed >> 17
			seed ^= seed << 5
			b[i] = byte(seed)
		}
		return b
	}
	for what, bundle := range map[string][]byte{
		"an upload larger than the disk":              tarGzOf(t, map[string][]byte{"blob": random(3 << 20)}),
		"an upload that fits, its tree that does not": tarGzOf(t, map[string][]byte{"blob": random(1200 << 10)}),
	} {
		_, err := e.api.UploadRevision(context.Background(), bytes.NewReader(bundle), "")
		wantAPIError(t, what, err, 507, api.CodeNoSpace, "the server's disk is full", "no space left on device")
		if left := dirEntries(t, filepath.Join(bundles, "tmp")); len(left) != 0 {
			t.Errorf("%s: temporary files left: %v", what, left)
		}
	}
	// The line is written as the answer goes out: wait for both.
	testwait.For(t, 10*time.Second, "the two failures in the server's log", func() bool {
		return strings.Count(e.srvLog.String(), `"msg":"API request failed"`) >= 2
	})
	log := e.srvLog.String()
	if n := strings.Count(log, `"msg":"API request failed"`); n != 2 || !strings.Contains(log, `"status":507`) || !strings.Contains(log, "no space left on device") {
		t.Errorf("the full disk is not logged twice as a server failure:\n%s", log)
	}
	if _, err := e.api.UploadRevision(context.Background(), bytes.NewReader(smallBundle(t, "fits")), ""); err != nil {
		t.Errorf("an upload that fits, after: %v", err)
	}
}

// Failed logins on the real server: logged with the address and never the
// token, then refused with 429 until the address's bucket refills.
func TestFailedLoginsAreLimited(t *testing.T) {
	e := newDeployEnv(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	wrong := "bg_" + strings.Repeat("x", 43)
	post := func(token string) *http.Response {
		resp, err := noRedirect.PostForm(e.api.Base+"/login", url.Values{"token": {token}, "next": {"/%09/evil.example"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	statuses := map[int]int{}
	for range 12 {
		statuses[post(wrong).StatusCode]++
	}
	if statuses[401] != 10 || statuses[429] != 2 {
		t.Errorf("12 failed logins answered %v; want 10 × 401, then 429", statuses)
	}
	resp := post(e.api.Token)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("the right token from a limited address: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	log := e.srvLog.String()
	if strings.Count(log, "failed dashboard login") != 10 || !strings.Contains(log, `"remote":"127.0.0.1:`) {
		t.Errorf("failed logins are not logged with the address:\n%s", log)
	}
	if strings.Contains(log, wrong) || strings.Contains(log, e.api.Token) {
		t.Error("a token appears in the server's log")
	}
}
