package artifact

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// entry describes one archive member for the generated test archives.
type entry struct {
	name   string
	typ    byte // tar type flag; zip maps it to a mode
	mode   int64
	body   string
	link   string
	zeroes int64 // body of this many zero bytes instead
}

func file(name, body string) entry {
	return entry{name: name, typ: tar.TypeReg, mode: 0o644, body: body}
}
func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) entry {
	return entry{name: name, typ: tar.TypeSymlink, mode: 0o777, link: target}
}

func tarBytes(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		size := int64(len(e.body)) + e.zeroes
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link,
			ModTime: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), Uid: 1000, Uname: "dev"}
		if e.typ == tar.TypeReg {
			hdr.Size = size
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ != tar.TypeReg {
			continue
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
		for left := e.zeroes; left > 0; {
			chunk := make([]byte, min(left, 64<<10))
			if _, err := tw.Write(chunk); err != nil {
				t.Fatal(err)
			}
			left -= int64(len(chunk))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func tarGz(t testing.TB, entries ...entry) []byte { return gzipBytes(t, tarBytes(t, entries)) }

func zipBytes(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		body := e.body
		switch e.typ {
		case tar.TypeDir:
			h.SetMode(fs.ModeDir | fs.FileMode(e.mode))
			h.Method = zip.Store
		case tar.TypeSymlink:
			h.SetMode(fs.ModeSymlink | 0o777)
			body = e.link
		case tar.TypeChar:
			h.SetMode(fs.ModeDevice | fs.ModeCharDevice | 0o644)
		case tar.TypeFifo:
			h.SetMode(fs.ModeNamedPipe | 0o644)
		default:
			h.SetMode(fs.FileMode(e.mode))
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body))
		for left := e.zeroes; left > 0; {
			chunk := make([]byte, min(left, 64<<10))
			w.Write(chunk)
			left -= int64(len(chunk))
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sampleTree is a small app: nested dirs, an executable script, an empty
// directory and links inside the tree.
func sampleTree() []entry {
	script := file("hooks/smoke.sh", "#!/bin/sh\necho ok\n")
	script.mode = 0o755
	private := file("conf/secret.txt", "s3cret")
	private.mode = 0o600
	return []entry{
		file("bluegreen.yaml", "app: shop\n"),
		dir("conf"),
		private,
		dir("empty"),
		dir("hooks"),
		script,
		symlink("current.yaml", "bluegreen.yaml"),
		symlink("hooks/conf", "../conf"),
		file("static/css/site.css", "body{}"),
		file("zero", ""),
	}
}

// writeDir materialises entries as a real directory.
func writeDir(t testing.TB, root string, entries []entry) {
	t.Helper()
	for _, e := range entries {
		p := filepath.Join(root, e.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch e.typ {
		case tar.TypeDir:
			err = os.Mkdir(p, fs.FileMode(e.mode))
		case tar.TypeSymlink:
			err = os.Symlink(e.link, p)
		default:
			if err = os.WriteFile(p, []byte(e.body), 0o600); err == nil {
				err = os.Chmod(p, fs.FileMode(e.mode))
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// snapshot describes a directory: every path with its kind, mode and
// content or target.
func snapshot(t testing.TB, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			lines = append(lines, fmt.Sprintf("%s -> %s", rel, target))
		case d.IsDir():
			lines = append(lines, fmt.Sprintf("%s/ %04o", rel, info.Mode().Perm()))
		default:
			b, _ := os.ReadFile(p)
			lines = append(lines, fmt.Sprintf("%s %04o %q", rel, info.Mode().Perm(), b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// newStore opens a store in base/store; base holds nothing else, so tests
// can check that nothing was written beside it.
func newStore(t testing.TB, lim Limits) (*Store, string) {
	t.Helper()
	base := t.TempDir()
	s, err := New(filepath.Join(base, "store"), Options{Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	return s, base
}

// leftovers lists what the store holds besides its own layout.
func leftovers(t testing.TB, s *Store) []string {
	t.Helper()
	var out []string
	for _, d := range []string{s.blobDir(), s.tmpDir()} {
		entries, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			out = append(out, filepath.Join(filepath.Base(d), e.Name()))
		}
	}
	return out
}

// fakeClock hands out strictly increasing times, one second apart.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time {
	c.t = c.t.Add(time.Second)
	return c.t
}
