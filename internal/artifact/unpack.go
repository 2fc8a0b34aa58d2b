package artifact

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Unpack writes a stored bundle into dest, which must be missing or an
// empty directory (ErrDestNotEmpty otherwise). Its parents are created.
// The stored bundle is checked again on the way — rules, limits and digest —
// and on any failure what was written is removed.
func (s *Store) Unpack(d Digest, dest string) (err error) {
	created, err := prepareDest(dest)
	if err != nil {
		return fmt.Errorf("unpacking bundle %s into %s: %w", d, dest, err)
	}
	defer func() {
		if err != nil {
			clearDest(dest, created)
		}
	}()
	root, err := os.OpenRoot(dest)
	if err != nil {
		return fmt.Errorf("unpacking bundle %s: %w", d, err)
	}
	defer root.Close()
	err = s.readBundle(d, func(r io.Reader) error {
		x := &extractor{t: newTree(s.lim), root: root, final: true}
		if err := extractTar(r, x); err != nil {
			return err
		}
		return checkDigest(x.t, d)
	})
	if err != nil {
		return fmt.Errorf("unpacking bundle %s into %s: %w", d, dest, err)
	}
	return nil
}

// prepareDest makes sure dest is an empty directory and reports whether it
// had to create it.
func prepareDest(dest string) (created bool, err error) {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return false, err
	}
	err = os.Mkdir(dest, 0o755)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return false, err
	}
	f, err := os.Open(dest)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err // also: dest is not a directory
	}
	if len(names) > 0 {
		return false, ErrDestNotEmpty
	}
	return false, nil
}

// clearDest undoes a failed unpack; errors are ignored because the unpack
// error is the one worth reporting.
func clearDest(dest string, created bool) {
	if created {
		os.RemoveAll(dest)
		return
	}
	entries, _ := os.ReadDir(dest)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dest, e.Name()))
	}
}

// ReadFile returns one file of a stored bundle, such as its bluegreen.yaml,
// without unpacking the rest. Symlinks inside the bundle are followed. A
// missing file is an error wrapping ErrNotFound.
func (s *Store) ReadFile(d Digest, name string) ([]byte, error) {
	t := newTree(s.lim)
	want, err := t.cleanName(name)
	if err != nil {
		return nil, fmt.Errorf("reading %s from bundle %s: %w", name, d, err)
	}
	data, err := s.findFile(d, want, t)
	if err == nil && data == nil {
		// Not a plain file under that name: follow links, look again.
		var target string
		if target, err = t.resolve("", want); err == nil && target != want {
			if n := t.nodes[target]; n != nil && n.kind == kindFile {
				data, err = s.findFile(d, target, nil)
			}
		}
	}
	if err == nil && data == nil {
		err = ErrNotFound
		if n := t.nodes[want]; n != nil && n.kind == kindDir || want == "" {
			err = errors.New("is a directory")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s from bundle %s: %w", name, d, err)
	}
	return data, nil
}

// findFile returns the content of the regular file named want, or nil if
// there is none. When t is set it also collects the tree's shape, which is
// what following symlinks needs.
func (s *Store) findFile(d Digest, want string, t *tree) ([]byte, error) {
	var data []byte
	err := s.readBundle(d, func(r io.Reader) error {
		tr := tar.NewReader(r)
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading tar: %w", err)
			}
			if hdr.Typeflag == tar.TypeReg && hdr.Name == want {
				var b bytes.Buffer
				n := &node{kind: kindFile}
				if err := newTree(s.lim).readFile(hdr.Name, n, &b, tr); err != nil {
					return err
				}
				data = append([]byte{}, b.Bytes()...) // non-nil even when empty
				return nil
			}
			if t == nil {
				continue
			}
			name, err := t.cleanName(hdr.Name)
			if err != nil {
				return err
			}
			n := &node{kind: kindFile}
			switch hdr.Typeflag {
			case tar.TypeDir:
				n.kind = kindDir
			case tar.TypeSymlink:
				n.kind, n.target = kindSymlink, hdr.Linkname
			}
			if err := t.add(hdr.Name, name, n); err != nil {
				return err
			}
		}
	})
	return data, err
}
