package artifact

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fuzzLimits keep each input cheap to unpack.
var fuzzLimits = Limits{MaxTotalBytes: 1 << 20, MaxFileBytes: 256 << 10, MaxEntries: 64, MaxPathLen: 256, MaxArchiveBytes: 1 << 20}

func fuzzSeeds() [][]entry {
	exe := file("bin/app", "ELF")
	exe.mode = 0o755
	return [][]entry{
		sampleTree(),
		{exe, {name: "app", typ: tar.TypeLink, link: "bin/app"}},
		{dir("a"), symlink("a/up", ".."), symlink("d", "."), symlink("e", "d/a/up/x")},
		{file("../x", "1")},
		{dir("sub"), symlink("l", "sub"), file("l/x", "2")},
		{file(strings.Repeat("long/", 30)+"name", "3")},
		{{name: "null", typ: tar.TypeChar, mode: 0o666}},
	}
}

func FuzzIngestTarGz(f *testing.F) {
	for _, entries := range fuzzSeeds() {
		// Seeds are raw tar, which the fuzzer mutates more usefully than
		// compressed bytes; the target compresses them.
		f.Add(tarBytes(f, entries))
	}
	f.Add(tarGz(f, sampleTree()...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
			data = gzipBytes(t, data)
		}
		checkIngestContained(t, data)
	})
}

func FuzzIngestZip(f *testing.F) {
	for _, entries := range fuzzSeeds() {
		if entries[0].typ == tar.TypeChar {
			continue
		}
		f.Add(zipBytes(f, entries...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkIngestContained(t, data)
	})
}

// checkIngestContained ingests any bytes and checks the invariants: no
// panic, nothing written outside the store, and a bundle that was accepted
// unpacks into a tree that stays inside its directory and ingests again to
// the same digest.
func checkIngestContained(t *testing.T, data []byte) {
	s, base := newStore(t, fuzzLimits)
	s.noSync = true
	d, err := s.IngestStream(bytes.NewReader(data), "")
	assertOnly(t, base, "store")
	assertOnly(t, filepath.Join(base, "store"), "sha256", "tmp")
	if got, _ := os.ReadDir(s.tmpDir()); len(got) != 0 {
		t.Fatalf("tmp holds %d entries after ingest (err %v)", len(got), err)
	}
	if err != nil {
		return
	}
	dest := filepath.Join(base, "out")
	if err := s.Unpack(d, dest); err != nil {
		t.Fatalf("accepted bundle does not unpack: %v", err)
	}
	assertOnly(t, base, "store", "out")
	assertContained(t, dest)
	again, err := s.Ingest(dest)
	if err != nil {
		t.Fatalf("unpacked tree does not ingest again: %v", err)
	}
	if again != d {
		t.Fatalf("unpacked tree has digest %s, want %s", again, d)
	}
	if _, err := s.ReadFile(d, "bluegreen.yaml"); err != nil && !errors.Is(err, ErrNotFound) {
		t.Logf("ReadFile: %v", err) // a directory by that name, say
	}
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !slices.Contains(names, e.Name()) {
			t.Fatalf("%s appeared in %s", e.Name(), dir)
		}
	}
}

// assertContained checks that every symlink under root resolves inside it.
func assertContained(t *testing.T, root string) {
	t.Helper()
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil // dangling: points nowhere, so not outside
		}
		if real != root && !strings.HasPrefix(real, root+string(filepath.Separator)) {
			target, _ := os.Readlink(p)
			t.Fatalf("symlink %s -> %s resolves outside the tree, to %s", p, target, real)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
