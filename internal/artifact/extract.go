package artifact

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
)

// extractor applies a source's entries to a tree and, when root is set,
// writes them below root. Every write goes through os.Root, so even a bug in
// the checks above cannot put a file outside the destination.
//
// Symlinks are created only by finish, once the whole tree is known to be
// safe: while entries are written no link exists that a write could follow.
// Staging does not create them at all, since the canonical form takes links
// from the tree.
type extractor struct {
	t    *tree
	root *os.Root // nil: validate and hash only
	// final marks the fleet's own tree: links are made and modes applied.
	// Staging leaves them out, so every staged file stays readable.
	final bool
}

func (x *extractor) dir(raw string, mode fs.FileMode) error {
	name, err := x.t.cleanName(raw)
	if err != nil {
		return err
	}
	if err := x.t.add(raw, name, &node{kind: kindDir, mode: mode.Perm()}); err != nil {
		return err
	}
	if name == "" || x.root == nil {
		return nil
	}
	return x.mkdirs(raw, name)
}

func (x *extractor) mkdirs(raw, dir string) error {
	if dir == "." || dir == "" {
		return nil
	}
	if err := x.root.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("entry %q: creating directory: %w", raw, err)
	}
	return nil
}

func (x *extractor) file(raw string, mode fs.FileMode, r io.Reader) error {
	name, err := x.t.cleanName(raw)
	if err != nil {
		return err
	}
	n := &node{kind: kindFile, mode: mode.Perm()}
	if err := x.t.add(raw, name, n); err != nil {
		return err
	}
	if x.root == nil {
		return x.t.readFile(raw, n, io.Discard, r)
	}
	return x.write(raw, name, n, r)
}

func (x *extractor) write(raw, name string, n *node, r io.Reader) error {
	if err := x.mkdirs(raw, path.Dir(name)); err != nil {
		return err
	}
	// O_EXCL: never reuse or follow whatever already sits at this name.
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("entry %q: creating file: %w", raw, err)
	}
	err = x.t.readFile(raw, n, f, r)
	if err == nil && x.final {
		// Chmod on the open file: the umask does not apply and no path is
		// looked up again.
		err = f.Chmod(n.mode)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("entry %q: writing file: %w", raw, cerr)
	}
	return err
}

func (x *extractor) symlink(raw, target string) error {
	name, err := x.t.cleanName(raw)
	if err != nil {
		return err
	}
	return x.t.add(raw, name, &node{kind: kindSymlink, mode: 0o777, target: target})
}

// hardlink stores a copy of an earlier file: the canonical form has no
// hardlinks, and a copy cannot be used to reach anything outside.
func (x *extractor) hardlink(raw, linkname string) error {
	target, err := x.t.cleanName(linkname)
	if err != nil {
		return unsafeEntry(raw, "hardlink target %q points outside the bundle", linkname)
	}
	tn := x.t.nodes[target]
	if tn == nil || tn.kind != kindFile || tn.sum == nil {
		return unsafeEntry(raw, "hardlink target %q is not an earlier file in the bundle", linkname)
	}
	if x.root == nil {
		return x.cloneFile(raw, tn)
	}
	src, err := x.root.Open(target)
	if err != nil {
		return fmt.Errorf("entry %q: opening hardlink target: %w", raw, err)
	}
	defer src.Close()
	return x.file(raw, tn.mode, src)
}

// cloneFile records a copy of tn without content at hand, under the same
// limits as a file read.
func (x *extractor) cloneFile(raw string, tn *node) error {
	name, err := x.t.cleanName(raw)
	if err != nil {
		return err
	}
	if err := x.t.add(raw, name, &node{kind: kindFile, mode: tn.mode, size: tn.size, sum: tn.sum}); err != nil {
		return err
	}
	if tn.size > x.t.lim.MaxTotalBytes-x.t.total {
		return overLimit(raw, "bundle larger than %d bytes in total", x.t.lim.MaxTotalBytes)
	}
	x.t.total += tn.size
	return nil
}

// finish checks the links of the whole tree, creates them, and gives
// directories their modes last, so a read-only directory did not block its
// own contents.
func (x *extractor) finish() error {
	if err := x.t.checkLinks(); err != nil {
		return err
	}
	if x.root == nil || !x.final {
		return nil
	}
	names := x.t.names()
	for _, name := range names {
		n := x.t.nodes[name]
		if n.kind != kindSymlink {
			continue
		}
		if err := x.mkdirs(name, path.Dir(name)); err != nil {
			return err
		}
		if err := x.root.Symlink(n.target, name); err != nil {
			return fmt.Errorf("entry %q: creating symlink: %w", name, err)
		}
	}
	for _, name := range slices.Backward(names) {
		if n := x.t.nodes[name]; n.kind == kindDir {
			if err := x.root.Chmod(name, n.mode); err != nil {
				return fmt.Errorf("entry %q: setting mode: %w", name, err)
			}
		}
	}
	return nil
}

func extractTar(r io.Reader, x *extractor) error {
	tr := tar.NewReader(r)
	for headers := 0; ; headers++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			return x.finish()
		}
		// ErrInsecurePath comes with a usable header; cleanName decides.
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return fmt.Errorf("reading tar: %w", err)
		}
		// Headers that are not entries (global PAX headers) still cost
		// time to parse; they count towards the same limit.
		if headers >= x.t.lim.MaxEntries {
			return overLimit(hdr.Name, "more than %d entries", x.t.lim.MaxEntries)
		}
		mode := fs.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = x.dir(hdr.Name, mode)
		case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont:
			// Old GNU sparse and contiguous files read as plain content.
			if hdr.Size > x.t.lim.MaxFileBytes {
				return overLimit(hdr.Name, "file declares %d bytes, more than %d", hdr.Size, x.t.lim.MaxFileBytes)
			}
			err = x.file(hdr.Name, mode, tr)
		case tar.TypeSymlink:
			err = x.symlink(hdr.Name, hdr.Linkname)
		case tar.TypeLink:
			err = x.hardlink(hdr.Name, hdr.Linkname)
		case tar.TypeXGlobalHeader:
			// Metadata for the archive, not an entry.
		case tar.TypeChar, tar.TypeBlock:
			return unsafeEntry(hdr.Name, "device file")
		case tar.TypeFifo:
			return unsafeEntry(hdr.Name, "named pipe")
		default:
			return unsafeEntry(hdr.Name, "unsupported tar entry type %q", hdr.Typeflag)
		}
		if err != nil {
			return err
		}
	}
}

func extractZip(ra io.ReaderAt, size int64, x *extractor) error {
	zr, err := zip.NewReader(ra, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return fmt.Errorf("reading zip: %w", err)
	}
	// The central directory is read already: refuse a bomb before any write.
	if len(zr.File) > x.t.lim.MaxEntries {
		return overLimit(zr.File[x.t.lim.MaxEntries].Name, "more than %d entries", x.t.lim.MaxEntries)
	}
	// So are the sizes: a bomb that says what it holds costs no disk. One
	// that lies is stopped by the bytes read, as every source is.
	var declared uint64
	for _, f := range zr.File {
		if f.UncompressedSize64 > uint64(x.t.lim.MaxTotalBytes)-declared {
			return overLimit(f.Name, "bundle declares more than %d bytes in total", x.t.lim.MaxTotalBytes)
		}
		declared += f.UncompressedSize64
	}
	for _, f := range zr.File {
		if err := extractZipEntry(f, x); err != nil {
			return err
		}
	}
	return x.finish()
}

func extractZipEntry(f *zip.File, x *extractor) error {
	mode := f.Mode()
	switch {
	case mode.IsDir():
		return x.dir(f.Name, mode)
	case mode&fs.ModeSymlink != 0:
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("entry %q: opening: %w", f.Name, err)
		}
		defer rc.Close()
		var b bytes.Buffer
		if _, err := io.Copy(&b, io.LimitReader(rc, int64(x.t.lim.MaxPathLen)+1)); err != nil {
			return fmt.Errorf("entry %q: reading symlink target: %w", f.Name, err)
		}
		return x.symlink(f.Name, b.String())
	case mode.IsRegular():
		if f.UncompressedSize64 > uint64(x.t.lim.MaxFileBytes) {
			return overLimit(f.Name, "file declares %d bytes, more than %d", f.UncompressedSize64, x.t.lim.MaxFileBytes)
		}
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("entry %q: opening: %w", f.Name, err)
		}
		defer rc.Close()
		return x.file(f.Name, mode, rc)
	case mode&(fs.ModeDevice|fs.ModeCharDevice) != 0:
		return unsafeEntry(f.Name, "device file")
	case mode&fs.ModeNamedPipe != 0:
		return unsafeEntry(f.Name, "named pipe")
	case mode&fs.ModeSocket != 0:
		return unsafeEntry(f.Name, "socket")
	default:
		return unsafeEntry(f.Name, "unsupported file type %v", mode.Type())
	}
}
