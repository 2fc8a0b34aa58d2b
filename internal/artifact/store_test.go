package artifact

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestRoundTripDir(t *testing.T) {
	s, base := newStore(t, Limits{})
	src := filepath.Join(base, "src")
	writeDir(t, src, sampleTree())

	d, err := s.Ingest(src)
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(base, "fleets", "blue")
	if err := s.Unpack(d, dest); err != nil {
		t.Fatal(err)
	}
	if got, want := snapshot(t, dest), snapshot(t, src); got != want {
		t.Fatalf("unpacked tree differs\n got:\n%s\nwant:\n%s", got, want)
	}
	info, err := os.Stat(filepath.Join(dest, "hooks", "smoke.sh"))
	if err != nil || info.Mode().Perm() != 0o755 {
		t.Fatalf("script mode = %v, %v; want 0755", info.Mode(), err)
	}
	if err := s.Verify(d); err != nil {
		t.Fatal(err)
	}
}

func TestSameTreeSameDigest(t *testing.T) {
	s, base := newStore(t, Limits{})
	src := filepath.Join(base, "src")
	writeDir(t, src, sampleTree())
	fromDir, err := s.Ingest(src)
	if err != nil {
		t.Fatal(err)
	}

	// Other packagings: reversed order, "./" prefixes, times and owners,
	// directories implied only by paths.
	var reordered []entry
	for _, e := range slices.Backward(sampleTree()) {
		if e.name == "static" || e.name == "hooks" {
			continue
		}
		e.name = "./" + e.name
		reordered = append(reordered, e)
	}
	tgz := filepath.Join(base, "app.tgz")
	if err := os.WriteFile(tgz, tarGz(t, append([]entry{dir("./")}, reordered...)...), 0o644); err != nil {
		t.Fatal(err)
	}
	zipFile := filepath.Join(base, "app.zip")
	if err := os.WriteFile(zipFile, zipBytes(t, reordered...), 0o644); err != nil {
		t.Fatal(err)
	}
	packagings := map[string]func() (Digest, error){
		"tar.gz file": func() (Digest, error) { return s.Ingest(tgz) },
		"zip file":    func() (Digest, error) { return s.Ingest(zipFile) },
		"pack zip": func() (Digest, error) {
			var buf bytes.Buffer
			return Pack(zipFile, &buf, Limits{})
		},
		"zip stream": func() (Digest, error) { return s.IngestStream(bytes.NewReader(zipBytes(t, sampleTree()...)), fromDir) },
		"plain tar":  func() (Digest, error) { return s.IngestStream(bytes.NewReader(tarBytes(t, reordered)), "") },
		"canonical": func() (Digest, error) {
			f, err := s.Open(fromDir)
			if err != nil {
				return "", err
			}
			defer f.Close()
			return s.IngestStream(f, fromDir)
		},
		"pack": func() (Digest, error) {
			var buf bytes.Buffer
			return Pack(src, &buf, Limits{})
		},
	}
	for name, ingest := range packagings {
		got, err := ingest()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != fromDir {
			t.Errorf("%s: digest %s, want %s", name, got, fromDir)
		}
	}
	if got := leftovers(t, s); len(got) != 1 {
		t.Fatalf("store holds %v, want one bundle", got)
	}
}

// A directory's explicit entry may come before or after its contents; the
// mode it ends up with must not depend on that.
func TestDirectoryModeIndependentOfOrder(t *testing.T) {
	s, _ := newStore(t, Limits{})
	ro := dir("a")
	ro.mode = 0o555
	first, err := s.IngestStream(bytes.NewReader(tarGz(t, ro, file("a/x", "1"))), "")
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.IngestStream(bytes.NewReader(tarGz(t, file("a/x", "1"), ro)), "")
	if err != nil {
		t.Fatal(err)
	}
	if first != last {
		t.Fatalf("digest depends on entry order: %s vs %s", first, last)
	}
}

func TestDistinctTreesDistinctDigests(t *testing.T) {
	s, _ := newStore(t, Limits{})
	a := file("run.sh", "x")
	b := a
	b.mode = 0o755
	seen := map[Digest]string{}
	for name, entries := range map[string][]entry{
		"file":        {a},
		"mode":        {b},
		"content":     {file("run.sh", "y")},
		"renamed":     {file("run2.sh", "x")},
		"link":        {symlink("run.sh", "x")},
		"dir":         {dir("run.sh")},
		"nested":      {file("d/run.sh", "x")},
		"linktarget":  {symlink("run.sh", "y")},
		"extra empty": {a, dir("e")},
	} {
		d, err := s.IngestStream(bytes.NewReader(tarGz(t, entries...)), "")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if other, dup := seen[d]; dup {
			t.Errorf("%s and %s share digest %s", name, other, d)
		}
		seen[d] = name
	}
}

func TestStreamDigestMismatchLeavesNothing(t *testing.T) {
	s, _ := newStore(t, Limits{})
	want := Digest("sha256:" + string(bytes.Repeat([]byte("0"), 64)))
	_, err := s.IngestStream(bytes.NewReader(tarGz(t, sampleTree()...)), want)
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("err = %v, want ErrDigestMismatch", err)
	}
	if got := leftovers(t, s); len(got) != 0 {
		t.Fatalf("store holds %v after a mismatch", got)
	}
	if _, err := s.IngestStream(bytes.NewReader(nil), "sha256:nothex"); err == nil {
		t.Fatal("a malformed declared digest was accepted")
	}
}

func TestUnpackRefusesNonEmptyDestination(t *testing.T) {
	s, base := newStore(t, Limits{})
	d, err := s.IngestStream(bytes.NewReader(tarGz(t, sampleTree()...)), "")
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(base, "out")
	writeDir(t, dest, []entry{file("keep.txt", "mine")})
	before := snapshot(t, dest)
	if err := s.Unpack(d, dest); !errors.Is(err, ErrDestNotEmpty) {
		t.Fatalf("err = %v, want ErrDestNotEmpty", err)
	}
	if after := snapshot(t, dest); after != before {
		t.Fatalf("destination changed:\n%s", after)
	}
	// An existing empty directory is fine.
	empty := filepath.Join(base, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.Unpack(d, empty); err != nil {
		t.Fatal(err)
	}
}

func TestUnpackChecksStoredContent(t *testing.T) {
	s, base := newStore(t, Limits{})
	d, err := s.IngestStream(bytes.NewReader(tarGz(t, file("a", "1"), file("b", "2"))), "")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.path(d)
	// Swap in another tree under the same name, as disk damage or tampering would.
	if err := os.WriteFile(p, tarGz(t, file("a", "1"), file("b", "3")), 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(base, "out")
	if err := s.Unpack(d, dest); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("err = %v, want ErrDigestMismatch", err)
	}
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("failed unpack left %s behind: %v", dest, err)
	}
	if err := s.Verify(d); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Verify: %v, want ErrDigestMismatch", err)
	}
}

// Unpacking re-applies every rule: a stored bundle replaced by a hostile
// archive still cannot write outside the destination.
func TestUnpackRefusesTamperedUnsafeBundle(t *testing.T) {
	s, base := newStore(t, Limits{})
	d, err := s.IngestStream(bytes.NewReader(tarGz(t, file("a", "1"))), "")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.path(d)
	if err := os.WriteFile(p, tarGz(t, file("a", "1"), file("../escaped", "x")), 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(base, "fleet", "out")
	if err := s.Unpack(d, dest); !errors.Is(err, ErrUnsafeEntry) {
		t.Fatalf("err = %v, want ErrUnsafeEntry", err)
	}
	if _, err := os.Stat(filepath.Join(base, "fleet", "escaped")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file escaped the destination: %v", err)
	}
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("failed unpack left %s behind: %v", dest, err)
	}
}

func TestReadFile(t *testing.T) {
	s, _ := newStore(t, Limits{})
	d, err := s.IngestStream(bytes.NewReader(tarGz(t, sampleTree()...)), "")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"bluegreen.yaml":        "app: shop\n",
		"./bluegreen.yaml":      "app: shop\n",
		"current.yaml":          "app: shop\n", // a symlink
		"hooks/conf/secret.txt": "s3cret",      // through a symlinked directory
		"zero":                  "",
	} {
		got, err := s.ReadFile(d, name)
		if err != nil || string(got) != want {
			t.Errorf("ReadFile(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := s.ReadFile(d, "missing.yaml"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing file: %v, want ErrNotFound", err)
	}
	if _, err := s.ReadFile(d, "conf"); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("directory: %v, want a directory error", err)
	}
	if _, err := s.ReadFile(d, "../etc/passwd"); !errors.Is(err, ErrUnsafeEntry) {
		t.Errorf("unsafe name: %v, want ErrUnsafeEntry", err)
	}
}

func TestPrune(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, err := New(filepath.Join(t.TempDir(), "store"), Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ingest := func(body string) Digest {
		t.Helper()
		d, err := s.IngestStream(bytes.NewReader(tarGz(t, file("v", body))), "")
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a, b, c, d := ingest("a"), ingest("b"), ingest("c"), ingest("d")
	if again := ingest("a"); again != a {
		t.Fatal("re-ingest changed the digest")
	}
	// Recency now: a, d, c, b. Keep two, and b (say, the live revision).
	removed, err := s.Prune(2, b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []Digest{c}) {
		t.Fatalf("removed %v, want [%s]", removed, c)
	}
	for dg, want := range map[Digest]bool{a: true, b: true, c: false, d: true} {
		if s.Has(dg) != want {
			t.Errorf("Has(%s) = %v, want %v", dg, !want, want)
		}
	}
	// Protection holds even with nothing else kept.
	if _, err := s.Prune(0, a, d); err != nil {
		t.Fatal(err)
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []Digest
	for _, bl := range list {
		got = append(got, bl.Digest)
	}
	if !slices.Equal(got, []Digest{a, d}) {
		t.Fatalf("after Prune(0, a, d): %v, want [a d]", got)
	}
	if err := s.Remove(a); err != nil || s.Has(a) {
		t.Fatalf("Remove: %v", err)
	}
	if err := s.Remove(a); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}

func TestNewClearsCrashLeftovers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	half := filepath.Join(s.tmpDir(), "bundle-123")
	if err := os.WriteFile(half, []byte("half a bundle"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err = New(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	if got := leftovers(t, s); len(got) != 0 {
		t.Fatalf("leftovers after reopening: %v", got)
	}
}
