package artifact

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"
	"testing"
)

// The check sees the unpacked tree, links followed, after the spool is gone;
// its error comes back as it is and nothing is stored.
func TestIngestCheckedRefusesBeforeStoring(t *testing.T) {
	s, _ := newStore(t, Limits{})
	refused := errors.New("no thanks")
	archive := tarGz(t, file("real.yaml", "app: shop\n"), symlink("bluegreen.yaml", "real.yaml"))
	var seen string
	_, err := s.IngestChecked(bytes.NewReader(archive), "", func(fsys fs.FS) error {
		b, err := fs.ReadFile(fsys, "bluegreen.yaml")
		if err != nil {
			t.Errorf("reading the spec through its link: %v", err)
		}
		seen = string(b)
		if _, err := fs.Stat(fsys, "missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat of a missing file = %v", err)
		}
		if _, err := fsys.Open("../x"); err == nil {
			t.Error("Open of ../x succeeded")
		}
		for _, name := range leftovers(t, s) {
			if strings.HasPrefix(name, "tmp/upload-") {
				t.Errorf("the spool %s is still there while the tree is checked", name)
			}
		}
		return refused
	})
	if err != refused {
		t.Fatalf("IngestChecked = %v, want the check's error as it is", err)
	}
	if seen != "app: shop\n" {
		t.Errorf("the check read %q", seen)
	}
	if left := leftovers(t, s); len(left) != 0 {
		t.Errorf("a refused bundle left %v", left)
	}
	d, err := s.IngestChecked(bytes.NewReader(archive), "", func(fs.FS) error { return nil })
	if err != nil || !s.Has(d) {
		t.Fatalf("IngestChecked with a passing check = %s, %v", d, err)
	}
}

// A zip that declares more than the bundle may hold is refused from its
// central directory, before anything is written.
func TestZipDeclaringTooMuchIsRefusedUnwritten(t *testing.T) {
	s, _ := newStore(t, Limits{MaxTotalBytes: 1 << 20})
	bomb := zipBytes(t, entry{name: "a", typ: '0', mode: 0o644, zeroes: 768 << 10}, entry{name: "b", typ: '0', mode: 0o644, zeroes: 768 << 10})
	_, err := s.IngestStream(bytes.NewReader(bomb), "")
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "declares more than 1048576 bytes in total") {
		t.Fatalf("IngestChecked = %v, want the declared total refused", err)
	}
	if left := leftovers(t, s); len(left) != 0 {
		t.Errorf("left %v", left)
	}
}
