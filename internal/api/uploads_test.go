package api

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"bluegreen/internal/artifact"
	"bluegreen/internal/auth"
	"bluegreen/internal/spec"
	"bluegreen/internal/testwait"
)

// tarFile is one file of a test bundle: a body, or zeros bytes of zeros.
type tarFile struct {
	name  string
	mode  int64
	body  string
	zeros int64
}

// tgz packs files into a .tar.gz.
func tgz(t *testing.T, files ...tarFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	zeros := make([]byte, 64<<10)
	for _, f := range files {
		size := int64(len(f.body)) + f.zeros
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: size, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, f.body); err != nil {
			t.Fatal(err)
		}
		for left := f.zeros; left > 0; left -= int64(len(zeros)) {
			if _, err := tw.Write(zeros[:min(left, int64(len(zeros)))]); err != nil {
				t.Fatal(err)
			}
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

// validBundle is a bundle the engine takes as a revision of app shop.
func validBundle(t *testing.T, note string) []byte {
	return tgz(t, tarFile{name: spec.FileName, mode: 0o644, body: "app: shop\nprocess:\n  command: [./run]\n"},
		tarFile{name: "run", mode: 0o755, body: "#!/bin/sh\n# " + note + "\n"})
}

// upload posts body as a bundle with the deployer's token.
func upload(t *testing.T, base, secret string, body io.Reader, query string) answer {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/api/v1/revisions"+query, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{status: -1, raw: err.Error()}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// tmpFiles lists the bundle store's temporary files and directories.
func (e *apiEnv) tmpFiles(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.dir, "bundles", "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	return names
}

func countPrefix(names []string, prefix string) int {
	n := 0
	for _, s := range names {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// storedBundles lists the bundles the store keeps.
func (e *apiEnv) storedBundles(t *testing.T) []artifact.Bundle {
	t.Helper()
	list, err := e.bundles.List()
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// Six bombs at once: two uploads run, two wait, the rest are told to come
// back later; the temporary disk in use is that of two uploads at most.
func TestConcurrentUploadsAreCapped(t *testing.T) {
	e := newAPIEnvWith(t, envOptions{limits: artifact.Limits{MaxTotalBytes: 8 << 20, MaxFileBytes: 8 << 20}})
	deployer := e.token(t, "ci", auth.Deployer)

	// Two uploads that hold their slots: half a bundle sent, the rest later.
	type held struct {
		w    *io.PipeWriter
		rest []byte
		done chan answer
	}
	var holders []held
	for i := range DefaultMaxUploads {
		b := validBundle(t, "held "+strconv.Itoa(i))
		pr, pw := io.Pipe()
		h := held{w: pw, rest: b[len(b)/2:], done: make(chan answer, 1)}
		go func() { h.done <- upload(t, e.url, deployer, pr, "") }()
		if _, err := pw.Write(b[:len(b)/2]); err != nil {
			t.Fatal(err)
		}
		holders = append(holders, h)
	}
	testwait.For(t, 30*time.Second, "two uploads spooling", func() bool { return countPrefix(e.tmpFiles(t), "upload-") == DefaultMaxUploads })

	// Four bombs: 16 MiB of zeros each, in 16 KiB, over the 8 MiB a
	// bundle may hold (a tar says its total only at its end).
	var zeros []tarFile
	for i := range 16 {
		zeros = append(zeros, tarFile{name: "zeros" + strconv.Itoa(i), mode: 0o644, zeros: 1 << 20})
	}
	bomb := tgz(t, zeros...)
	results := make(chan answer, 4)
	for range 4 {
		go func() { results <- upload(t, e.url, deployer, bytes.NewReader(bomb), "") }()
	}
	var busy []answer
	for range 2 {
		busy = append(busy, <-results)
	}
	for _, a := range busy {
		if a.status != http.StatusServiceUnavailable || a.body.Code != CodeBusy || a.header.Get("Retry-After") == "" {
			t.Errorf("an upload past the queue: %d %v %s; want 503 busy with Retry-After", a.status, a.header, a.raw)
		}
	}
	if n := countPrefix(e.tmpFiles(t), "upload-"); n != DefaultMaxUploads {
		t.Errorf("%d uploads spooling while two run; want 2: %v", n, e.tmpFiles(t))
	}

	// The held uploads finish, then the waiting bombs run and are refused.
	for _, h := range holders {
		if _, err := h.w.Write(h.rest); err != nil {
			t.Fatal(err)
		}
		h.w.Close()
		if a := <-h.done; a.status != http.StatusCreated {
			t.Errorf("held upload: %d %s", a.status, a.raw)
		}
	}
	for range 2 {
		a := <-results
		if a.status != http.StatusRequestEntityTooLarge || !strings.Contains(a.body.Message, "bundle larger than 8388608 bytes in total") {
			t.Errorf("a bomb that waited: %d %s; want 413", a.status, a.raw)
		}
	}
	if left := e.tmpFiles(t); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// A spec over its bounds, or with problems, is refused before the bundle
// is stored: nothing is left behind.
func TestUploadWithABadSpecStoresNothing(t *testing.T) {
	e := newAPIEnv(t)
	deployer := e.token(t, "ci", auth.Deployer)
	huge := tarFile{name: spec.FileName, mode: 0o644, body: "app: shop\nprocess:\n  command: [./run]\nx-pad:\n" + strings.Repeat("  - a\n", 50<<20/6)}
	for _, c := range []struct {
		what   string
		bundle []byte
		status int
		code   string
		want   string
	}{
		{"a 50 MB spec", tgz(t, huge), 413, CodeTooLarge, "bytes; a spec may be at most 262144 bytes (256 KiB)"},
		{"a spec with problems", tgz(t, tarFile{name: spec.FileName, mode: 0o644, body: "app: Shop\n"}), 400, CodeInvalid, "bluegreen.yaml:1:6: app"},
		{"no spec", tgz(t, tarFile{name: "run", mode: 0o755, body: "x"}), 400, CodeInvalid, "bluegreen.yaml: file does not exist"},
	} {
		a := upload(t, e.url, deployer, bytes.NewReader(c.bundle), "")
		if a.status != c.status || a.body.Code != c.code || !strings.Contains(a.body.Message, c.want) {
			t.Errorf("%s: %d %s; want %d %s with %q", c.what, a.status, a.raw, c.status, c.code, c.want)
		}
		if b := e.storedBundles(t); len(b) != 0 {
			t.Errorf("%s: bundles stored: %v", c.what, b)
		}
		if left := e.tmpFiles(t); len(left) != 0 {
			t.Errorf("%s: temporary files left: %v", c.what, left)
		}
	}
	if _, err := e.client(deployer).App(context.Background(), "shop"); !isStatus(err, 404) {
		t.Errorf("app shop after refused uploads: %v; want 404", err)
	}
	a := upload(t, e.url, deployer, bytes.NewReader(validBundle(t, "ok")), "?message="+strings.Repeat("m", maxMessage+1))
	if a.status != 400 || !strings.Contains(a.body.Message, "message: 4097 bytes; at most 4096") {
		t.Errorf("a long message: %d %s", a.status, a.raw)
	}
}

func isStatus(err error, status int) bool {
	var ae *Error
	return errors.As(err, &ae) && ae.Status == status
}

// A body that stops coming, or trickles, is cut: it would hold an upload
// slot and its disk for as long as the client likes.
func TestSlowUploadsAreCut(t *testing.T) {
	e := newAPIEnvWith(t, envOptions{server: func(s *Server) {
		s.pace = uploadPace{grace: time.Second, stall: 200 * time.Millisecond, minRate: 1 << 20}
	}})
	deployer := e.token(t, "ci", auth.Deployer)
	b := validBundle(t, "slow")

	pr, pw := io.Pipe()
	go func() { pw.Write(b[:10]) }() // then nothing
	a := upload(t, e.url, deployer, pr, "")
	pw.Close()
	if a.status != http.StatusRequestTimeout || a.body.Code != CodeTimeout || !strings.Contains(a.body.Message, "nothing arrived for 200ms") {
		t.Errorf("a stalled upload: %d %s; want 408 timeout", a.status, a.raw)
	}

	// A byte every 10 ms: never a gap, but a thousand times too slow.
	pr, pw = io.Pipe()
	stop := make(chan struct{})
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := pw.Write([]byte{b[i%len(b)]}); err != nil {
				return
			}
		}
	}()
	a = upload(t, e.url, deployer, pr, "")
	close(stop)
	pw.Close()
	if a.status != http.StatusRequestTimeout || !strings.Contains(a.body.Message, "arrived slower than 1024 KiB/s") {
		t.Errorf("a trickling upload: %d %s; want 408 timeout", a.status, a.raw)
	}
	testwait.For(t, 30*time.Second, "the cut uploads' files to go", func() bool { return len(e.tmpFiles(t)) == 0 })

	// At a normal pace the same bundle goes in.
	if a := upload(t, e.url, deployer, bytes.NewReader(b), ""); a.status != http.StatusCreated {
		t.Errorf("a normal upload: %d %s", a.status, a.raw)
	}
}

// A failure of the server's own files is a server error, and is logged.
func TestServerSideUploadFailuresAreLogged(t *testing.T) {
	e := newAPIEnv(t)
	deployer := e.token(t, "ci", auth.Deployer)
	tmp := filepath.Join(e.dir, "bundles", "tmp")
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatal(err)
	}
	a := upload(t, e.url, deployer, bytes.NewReader(validBundle(t, "x")), "")
	if a.status != http.StatusInternalServerError || a.body.Code != CodeInternal || !strings.Contains(a.body.Message, "no such file or directory") {
		t.Errorf("upload without a tmp directory: %d %s; want 500", a.status, a.raw)
	}
	log := e.log.String()
	if !strings.Contains(log, "API request failed") || !strings.Contains(log, "status=500") || !strings.Contains(log, "path=/api/v1/revisions") {
		t.Errorf("the failure is not logged:\n%s", log)
	}
}
