package spec

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// Every bound of a spec is refused with ErrTooLarge, naming the file and the
// bound, whatever part of the file is large: x- sections are ignored by the
// decoder but not by the bounds.
func TestSpecBoundsAreRefused(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"bytes in a comment", base + "# " + strings.Repeat("x", MaxBytes) + "\n", "at most 262144 bytes"},
		{"bytes in an x- value", base + "x-pad: " + strings.Repeat("y", MaxBytes) + "\n", "at most 262144 bytes"},
		{"nodes in an x- section", base + "x-pad:\n" + strings.Repeat("  - a\n", MaxNodes), "over 20000 keys, values and list items"},
		{"nodes in x- keys", base + "x-pad: {" + strings.Repeat("k: v, ", MaxNodes/2) + "}\n", "over 20000 keys"},
		{"nested aliases", nestedAliasBomb(), "counting each use of an alias"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "bundle/bluegreen.yaml")
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Parse = %v, want ErrTooLarge", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "bundle/bluegreen.yaml") || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q: want it to name the file and contain %q", msg, tc.want)
			}
		})
	}
	// Just under the bounds is fine.
	ok := base + "x-pad:\n" + strings.Repeat("  - a\n", MaxNodes-20)
	if _, err := Parse([]byte(ok), FileName); err != nil {
		t.Errorf("a spec under the bounds: %v", err)
	}
	if _, err := Parse([]byte(base+"# "+strings.Repeat("x", MaxBytes-len(base)-3)+"\n"), FileName); err != nil {
		t.Errorf("a spec of MaxBytes: %v", err)
	}
}

// ParseFile (what `bluegreen validate` reads with) refuses a file over
// MaxBytes from its size, before reading it.
func TestParseFileRefusesLargeFilesUnread(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: 50 MB that cost no disk, and would cost gigabytes parsed.
	if _, err := f.WriteString(base + "x-pad:\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(50 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = ParseFile(path)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), path+": the file is 52428800 bytes; a spec may be at most 262144 bytes") {
		t.Fatalf("ParseFile = %v, want the file and its size refused", err)
	}
}

// A file whose size says little but whose content goes on (a pipe, a
// growing file) is read only one byte past the bound.
func TestReadFileStopsPastTheBound(t *testing.T) {
	fsys := &endless{}
	_, err := ReadFile(fsys, FileName)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("ReadFile = %v, want ErrTooLarge", err)
	}
	if fsys.read != MaxBytes+1 {
		t.Errorf("read %d bytes, want %d", fsys.read, MaxBytes+1)
	}
	// A file that fits is read whole.
	data, err := ReadFile(fstest.MapFS{FileName: {Data: []byte(base)}}, FileName)
	if err != nil || string(data) != base {
		t.Errorf("ReadFile = %q, %v", data, err)
	}
	if _, err := ReadFile(fstest.MapFS{"d/x": {}}, "d"); err == nil || !strings.Contains(err.Error(), "d is a directory") {
		t.Errorf("ReadFile of a directory = %v", err)
	}
}

// endless is a file system of one file that reports 10 bytes and never
// ends; read counts the bytes read from it.
type endless struct{ read int64 }

func (e *endless) Open(string) (fs.File, error) { return endlessFile{e}, nil }

type endlessFile struct{ e *endless }

func (endlessFile) Stat() (fs.FileInfo, error) { return endlessInfo{}, nil }
func (endlessFile) Close() error               { return nil }
func (f endlessFile) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '#'
	}
	f.e.read += int64(len(p))
	return len(p), nil
}

type endlessInfo struct{}

func (endlessInfo) Name() string       { return FileName }
func (endlessInfo) Size() int64        { return 10 }
func (endlessInfo) Mode() fs.FileMode  { return 0o644 }
func (endlessInfo) ModTime() time.Time { return time.Time{} }
func (endlessInfo) IsDir() bool        { return false }
func (endlessInfo) Sys() any           { return nil }
