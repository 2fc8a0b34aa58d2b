package artifact

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkRefused ingests archive and expects err to wrap want and to name the
// offending entry; nothing may be stored or left beside the store.
func checkRefused(t *testing.T, s *Store, base string, archive []byte, want error, entryName string) {
	t.Helper()
	_, err := s.IngestStream(bytes.NewReader(archive), "")
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	t.Logf("refused: %v", err)
	var ee *EntryError
	if entryName != "" && (!errors.As(err, &ee) || ee.Entry != entryName) {
		t.Fatalf("err = %v, want it to name entry %q", err, entryName)
	}
	if got := leftovers(t, s); len(got) != 0 {
		t.Fatalf("store holds %v after a refusal", got)
	}
	entries, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "store" && e.Name() != "outside" {
			t.Fatalf("%s appeared beside the store", e.Name())
		}
	}
	if got, _ := os.ReadDir(filepath.Join(base, "outside")); len(got) != 0 {
		t.Fatalf("written outside: %v", got)
	}
}

func TestUnsafeEntriesRefused(t *testing.T) {
	hard := func(name, target string) entry { return entry{name: name, typ: tar.TypeLink, link: target} }
	cases := []struct {
		name    string
		entries []entry
		entry   string // the entry the error must name
	}{
		{"dotdot", []entry{file("../x", "pwned")}, "../x"},
		{"dotdot deep", []entry{file("a/../../x", "pwned")}, "a/../../x"},
		{"dotdot inside", []entry{file("a/../x", "pwned")}, "a/../x"},
		{"absolute", []entry{file("/etc/x", "pwned")}, "/etc/x"},
		{"backslash", []entry{file(`..\x`, "pwned")}, `..\x`},
		{"symlink out", []entry{symlink("l", "../../../outside")}, "l"},
		{"symlink absolute", []entry{symlink("l", "/etc")}, "l"},
		{"symlink then file through it", []entry{dir("sub"), symlink("l", "sub"), file("l/x", "pwned")}, "l/x"},
		{"symlink chain out", []entry{symlink("d", "."), symlink("e", "d/../x")}, "e"},
		{"symlink loop", []entry{symlink("a", "b"), symlink("b", "a")}, "a"},
		{"hardlink out", []entry{hard("h", "../../outside/x")}, "h"},
		{"hardlink absolute", []entry{hard("h", "/etc/passwd")}, "h"},
		{"hardlink to later entry", []entry{hard("h", "x"), file("x", "1")}, "h"},
		{"file under a file", []entry{file("a", "1"), file("a/b", "2")}, "a/b"},
		{"duplicate", []entry{file("a", "1"), file("./a", "2")}, "./a"},
		{"char device", []entry{{name: "null", typ: tar.TypeChar, mode: 0o666}}, "null"},
		{"block device", []entry{{name: "sda", typ: tar.TypeBlock, mode: 0o660}}, "sda"},
		{"fifo", []entry{{name: "pipe", typ: tar.TypeFifo, mode: 0o644}}, "pipe"},
		{"not utf-8", []entry{file("a\xff", "x")}, "a\xff"},
		{"symlink target not utf-8", []entry{symlink("l", "a\xff")}, "l"},
		{"empty name", []entry{file(".", "x")}, "."},
	}
	for _, tc := range cases {
		t.Run("tar/"+tc.name, func(t *testing.T) {
			s, base := newStore(t, Limits{})
			os.Mkdir(filepath.Join(base, "outside"), 0o755)
			checkRefused(t, s, base, tarGz(t, tc.entries...), ErrUnsafeEntry, tc.entry)
		})
	}
	for _, tc := range cases {
		if tc.entries[0].typ == tar.TypeLink || tc.entries[0].typ == tar.TypeBlock {
			continue // zip has no hardlinks or block devices
		}
		t.Run("zip/"+tc.name, func(t *testing.T) {
			s, base := newStore(t, Limits{})
			os.Mkdir(filepath.Join(base, "outside"), 0o755)
			checkRefused(t, s, base, zipBytes(t, tc.entries...), ErrUnsafeEntry, tc.entry)
		})
	}
}

func TestHardlinkInsideBecomesCopy(t *testing.T) {
	s, base := newStore(t, Limits{})
	exe := file("bin/app", "ELF")
	exe.mode = 0o755
	d, err := s.IngestStream(bytes.NewReader(tarGz(t, exe, entry{name: "app", typ: tar.TypeLink, link: "bin/app"})), "")
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(base, "out")
	if err := s.Unpack(d, dest); err != nil {
		t.Fatal(err)
	}
	want := "app 0755 \"ELF\"\nbin/ 0755\nbin/app 0755 \"ELF\""
	if got := snapshot(t, dest); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestSpecialBitsDropped(t *testing.T) {
	s, base := newStore(t, Limits{})
	suid := file("run", "x")
	suid.mode = 0o4755 | 0o2000
	sticky := dir("tmp")
	sticky.mode = 0o1777
	d, err := s.IngestStream(bytes.NewReader(tarGz(t, suid, sticky)), "")
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(base, "out")
	if err := s.Unpack(d, dest); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{"run": 0o755, "tmp": os.ModeDir | 0o777} {
		info, err := os.Stat(filepath.Join(dest, name))
		if err != nil || info.Mode() != want {
			t.Errorf("%s: mode %v, %v; want %v", name, info.Mode(), err, want)
		}
	}
}

func TestSourceDirRefusals(t *testing.T) {
	s, base := newStore(t, Limits{})
	src := filepath.Join(base, "src")
	writeDir(t, src, []entry{file("ok", "1"), symlink("escape", "../../etc/passwd")})
	if _, err := s.Ingest(src); !errors.Is(err, ErrUnsafeEntry) || !strings.Contains(err.Error(), `"escape"`) {
		t.Fatalf("err = %v, want ErrUnsafeEntry naming \"escape\"", err)
	}

	odd := filepath.Join(base, "odd")
	writeDir(t, odd, []entry{file("sub/bad\xff", "1")})
	var ee *EntryError
	if _, err := s.Ingest(odd); !errors.As(err, &ee) || ee.Entry != "sub/bad\xff" {
		t.Fatalf("err = %v, want an EntryError naming the non-UTF-8 name", err)
	}
}

func TestLimits(t *testing.T) {
	many := func(n int) []entry {
		var out []entry
		for i := range n {
			out = append(out, file(fmt.Sprintf("f%03d", i), "x"))
		}
		return out
	}
	big := func(name string, n int64) entry { e := file(name, ""); e.zeroes = n; return e }
	lim := Limits{MaxTotalBytes: 3 << 20, MaxFileBytes: 2 << 20, MaxEntries: 20, MaxPathLen: 64}
	cases := []struct {
		name    string
		archive func(t *testing.T) []byte
		entry   string
	}{
		// Bombs: megabytes of zeros compress to a few kilobytes.
		{"tar bomb file", func(t *testing.T) []byte { return tarGz(t, big("bomb", 8<<20)) }, "bomb"},
		{"tar bomb total", func(t *testing.T) []byte {
			return tarGz(t, big("a", 1<<20), big("b", 1<<20), big("c", 1<<20), big("d", 1<<20))
		}, "d"},
		{"zip bomb file", func(t *testing.T) []byte { return zipBytes(t, big("bomb", 8<<20)) }, "bomb"},
		{"zip bomb total", func(t *testing.T) []byte {
			return zipBytes(t, big("a", 1<<20), big("b", 1<<20), big("c", 1<<20), big("d", 1<<20))
		}, "d"},
		{"tar entry count", func(t *testing.T) []byte { return tarGz(t, many(30)...) }, "f020"},
		{"zip entry count", func(t *testing.T) []byte { return zipBytes(t, many(30)...) }, "f020"},
		{"implied dirs count", func(t *testing.T) []byte {
			return tarGz(t, file("a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w", "x"))
		}, "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w"},
		{"path length", func(t *testing.T) []byte { return tarGz(t, file(strings.Repeat("x", 65), "")) }, strings.Repeat("x", 65)},
		{"symlink target length", func(t *testing.T) []byte {
			return zipBytes(t, symlink("l", strings.Repeat("y", 65)))
		}, "l"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, base := newStore(t, lim)
			checkRefused(t, s, base, tc.archive(t), ErrLimit, tc.entry)
		})
	}
}

// A tar header may declare any size; a huge one is refused before reading.
func TestDeclaredSizeRefused(t *testing.T) {
	s, base := newStore(t, Limits{MaxFileBytes: 1 << 20})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "huge", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 40})
	tw.Write(make([]byte, 1024)) // truncated: only the header matters
	checkRefused(t, s, base, gzipBytes(t, buf.Bytes()), ErrLimit, "huge")
}

// A zip entry whose data expands beyond what its headers declare is refused
// as it is read, not trusted.
func TestZipLyingSizeRefused(t *testing.T) {
	s, base := newStore(t, Limits{MaxFileBytes: 1 << 20})
	archive := zipBytes(t, entry{name: "liar", typ: tar.TypeReg, mode: 0o644, zeroes: 4 << 20})
	// Patch the declared uncompressed size (local header and central
	// directory) down to 100 bytes.
	patched := bytes.Clone(archive)
	var real [4]byte
	real[0], real[1], real[2], real[3] = 0, 0, 0x40, 0 // 4 MiB, little-endian
	n := bytes.Count(patched, real[:])
	if n == 0 {
		t.Fatal("declared size not found in the archive")
	}
	patched = bytes.ReplaceAll(patched, real[:], []byte{100, 0, 0, 0})
	_, err := s.IngestStream(bytes.NewReader(patched), "")
	if err == nil {
		t.Fatal("a zip whose content exceeds its declared size was accepted")
	}
	t.Logf("refused: %v", err)
	if got := leftovers(t, s); len(got) != 0 {
		t.Fatalf("store holds %v after a refusal", got)
	}
	if entries, _ := os.ReadDir(base); len(entries) != 1 {
		t.Fatalf("base holds %d entries, want only the store", len(entries))
	}
}

func TestUnrecognisedFormat(t *testing.T) {
	s, _ := newStore(t, Limits{})
	if _, err := s.IngestStream(strings.NewReader("just some text"), ""); err == nil || !strings.Contains(err.Error(), "unrecognised") {
		t.Fatalf("err = %v", err)
	}
	if got := leftovers(t, s); len(got) != 0 {
		t.Fatalf("store holds %v", got)
	}
}

// Many long links cost the link check time; a budget refuses such a tree
// instead of spending minutes on it.
func TestSymlinkCheckBounded(t *testing.T) {
	s, base := newStore(t, Limits{MaxEntries: 1000})
	var entries []entry
	long := strings.Repeat("./", 500) + "x"
	for i := range 1000 {
		entries = append(entries, symlink(fmt.Sprintf("l%05d", i), long))
	}
	checkRefused(t, s, base, tarGz(t, entries...), ErrUnsafeEntry, "")
}
